# mailflow-loader v3
# Runs host scripts for the bootstrap (bootstrap.ps1), which hands it the lines of stdin: line 2 holds the scripts
# and the libraries they require, each library once ({"libraries": {NAME: TEXT}, "scripts": [{"name", "version",
# "script": TEXT, "libraries": [NAME]}]}), line 3 their parameters in the same order ({"params": [...]}); lists
# inside objects, because Windows PowerShell 5.1's ConvertFrom-Json writes a top-level array as one object, and
# under strict mode a lone object has no Count. Each TEXT is gzip-compressed UTF-8, in base64: a whole host's audit
# travels in a quarter of the bytes. One script is a module's run;
# several are the audit of a whole host in one round trip. The parameters reach each script as an object made by
# ConvertFrom-Json: data, never code. A script returns one object, its result; the loader writes one document per
# script, in order, and maps every exception to that script's document, so that one failing script fails only its
# own check and each script holds its own logic only.
param([Parameter(Mandatory = $true)] [string[]] $lines)
$ErrorActionPreference = 'Stop'

function Expand-MailflowText([string]$Packed) {
    $compressed = [System.IO.MemoryStream]::new([Convert]::FromBase64String($Packed))
    $reader = [System.IO.StreamReader]::new([System.IO.Compression.GZipStream]::new($compressed, [System.IO.Compression.CompressionMode]::Decompress), [System.Text.Encoding]::UTF8)
    try {
        $reader.ReadToEnd()
    }
    finally {
        $reader.Dispose()
    }
}

$payload = ConvertFrom-Json $lines[1]
$requests = @($payload.scripts)
$allParams = @((ConvertFrom-Json $lines[2]).params)
$failed = $false
for ($index = 0; $index -lt $requests.Count; $index++) {
    $request = $requests[$index]
    $document = [ordered]@{ script = $request.name; version = $request.version; ok = $true }
    try {
        # A scope of its own per script: its libraries' functions are seen by it (a child scope), and gone after.
        $output = @(& {
                param($request, $params)
                foreach ($name in @($request.libraries)) {
                    . ([scriptblock]::Create((Expand-MailflowText $payload.libraries.PSObject.Properties[$name].Value)))
                }
                & ([scriptblock]::Create((Expand-MailflowText $request.script))) $params
            } $request $allParams[$index])
        if ($output.Count -ne 1) {
            throw [InvalidOperationException]::new("the script wrote $($output.Count) objects, not one result")
        }
        $document.result = $output[0]
    }
    catch {
        $exception = $_.Exception
        # A .NET method or property that throws reaches PowerShell wrapped ("Exception calling X with N argument(s)":
        # PowerShell's words, localized); the exception that decides, its type and HResult, is the inner one.
        while (($exception -is [System.Management.Automation.MethodException] -or $exception -is [System.Management.Automation.SetValueInvocationException] -or $exception -is [System.Management.Automation.GetValueInvocationException]) -and $null -ne $exception.InnerException) {
            $exception = $exception.InnerException
        }
        $failed = $true
        $document.ok = $false
        $document.error = [ordered]@{ type = $exception.GetType().FullName; message = $exception.Message; hresult = $exception.HResult }
    }
    # Non-ASCII characters (a Swedish or German exception message) are escaped, so that the document reaches the
    # controller intact whatever the console code page of the shell.
    [regex]::Replace((ConvertTo-Json $document -Compress -Depth 20), '[^\x00-\x7F]', { '\u{0:x4}' -f [int][char]$args[0].Value })
}
if ($failed) {
    exit 1
}
