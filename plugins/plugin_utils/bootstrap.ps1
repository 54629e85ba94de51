# mailflow-bootstrap v2
# The one command line of every host-script run, the same for every script, and kept tiny: cmd.exe, which WinRM's
# cmd shell runs a command through, stops a command line at 8,191 characters, and ansible-core before 2.19 encoded
# it a second time. Everything else travels on stdin as ASCII JSON lines: line 1 {"loader": the text of
# loader.ps1}, line 2 {"name", "version", "script", "libraries"}, line 3 the script's parameters. Over psrp the same
# lines arrive as pipeline input: one object per line, or (ansible-core before 2.19) one object holding them all,
# hence the join and split.
$ErrorActionPreference = 'Stop'
$lines = @((@($input) -join "`n") -split "`r?`n" | Where-Object { $_ })
& ([scriptblock]::Create((ConvertFrom-Json $lines[0]).loader)) $lines
