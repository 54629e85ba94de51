# mailflow-bootstrap v1
# The one command line of every host-script run, the same for every script. cmd.exe, which WinRM's cmd shell
# runs a command through, stops a command line at 8,191 characters, so the host script, its libraries and its
# parameters travel on stdin, as ASCII JSON lines: line 1 {"name", "version", "script", "libraries"}, line 2 the
# script's parameters. Over psrp the same lines arrive as pipeline input: one object per line, or (ansible-core
# before 2.19) one object holding both, hence the join and split. The parameters reach the script as an object
# made by ConvertFrom-Json: data, never code.
# The script returns one object, its result; the bootstrap writes the document the controller reads and maps
# every exception to it, so that each script holds its own logic only.
$ErrorActionPreference = 'Stop'
$lines = @((@($input) -join "`n") -split "`r?`n" | Where-Object { $_ })
$request = ConvertFrom-Json $lines[0]
$document = [ordered]@{ script = $request.name; version = $request.version; ok = $true }
try {
    # Libraries define functions in this scope, which the script (a child scope) sees.
    foreach ($library in @($request.libraries)) {
        . ([scriptblock]::Create($library))
    }
    $output = @(& ([scriptblock]::Create($request.script)) (ConvertFrom-Json $lines[1]))
    if ($output.Count -ne 1) {
        throw [InvalidOperationException]::new("the script wrote $($output.Count) objects, not one result")
    }
    $document.result = $output[0]
}
catch {
    $exception = $_.Exception
    $document.ok = $false
    $document.error = [ordered]@{ type = $exception.GetType().FullName; message = $exception.Message; hresult = $exception.HResult }
}
# Non-ASCII characters (a Swedish or German exception message) are escaped, so that the document reaches the
# controller intact whatever the console code page of the shell.
[regex]::Replace((ConvertTo-Json $document -Compress -Depth 20), '[^\x00-\x7F]', { '\u{0:x4}' -f [int][char]$args[0].Value })
if (-not $document.ok) {
    exit 1
}
