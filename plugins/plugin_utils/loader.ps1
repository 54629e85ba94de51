# mailflow-loader v1
# Runs one host script for the bootstrap (bootstrap.ps1), which hands it the lines of stdin: line 2 names the script
# and carries its text and its libraries, line 3 its parameters. The parameters reach the script as an object made
# by ConvertFrom-Json: data, never code. The script returns one object, its result; the loader writes the document
# the controller reads and maps every exception to it, so that each script holds its own logic only.
param([Parameter(Mandatory = $true)] [string[]] $lines)
$ErrorActionPreference = 'Stop'
$request = ConvertFrom-Json $lines[1]
$document = [ordered]@{ script = $request.name; version = $request.version; ok = $true }
try {
    # Libraries define functions in this scope, which the script (a child scope) sees.
    foreach ($library in @($request.libraries)) {
        . ([scriptblock]::Create($library))
    }
    $output = @(& ([scriptblock]::Create($request.script)) (ConvertFrom-Json $lines[2]))
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
