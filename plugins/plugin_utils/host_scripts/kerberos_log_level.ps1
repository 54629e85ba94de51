# mailflow-host-script: kerberos_log_level v1
# KB 979174 step 5: reads, sets or removes HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel.
# Contract: JSON on stdin, {"action": "read"}, {"action": "set", "value": <int>} or {"action": "remove"};
# one JSON document on stdout with the value as it stands after the action, so that a change needs no third
# round trip to verify it. The registry is used through .NET: nothing depends on a localized tool's text.
$ErrorActionPreference = 'Stop'
$scriptName = 'kerberos_log_level'
$scriptVersion = 1
$keyPath = 'SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters'
$valueName = 'LogLevel'

function ConvertTo-AsciiJson([object]$Document) {
    # Non-ASCII characters (a Swedish or German exception message) are escaped, so the document reaches the
    # controller intact whatever the console code page of the WinRM shell.
    $json = ConvertTo-Json -InputObject $Document -Compress -Depth 5
    [regex]::Replace($json, '[^\x00-\x7F]', { param($match) '\u{0:x4}' -f [int][char]$match.Value })
}

try {
    $params = (@($input) -join "`n") | ConvertFrom-Json

    if ($params.action -eq 'set') {
        $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey($keyPath)
        try {
            # A value of another kind (REG_SZ "1") is not honoured by the Kerberos client, so it is replaced.
            if (($key.GetValueNames() -contains $valueName) -and ($key.GetValueKind($valueName) -ne [Microsoft.Win32.RegistryValueKind]::DWord)) {
                $key.DeleteValue($valueName)
            }
            $key.SetValue($valueName, [int]$params.value, [Microsoft.Win32.RegistryValueKind]::DWord)
        }
        finally {
            $key.Dispose()
        }
    }
    elseif ($params.action -eq 'remove') {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($keyPath, $true)
        if ($null -ne $key) {
            try {
                $key.DeleteValue($valueName, $false)
            }
            finally {
                $key.Dispose()
            }
        }
    }
    elseif ($params.action -ne 'read') {
        throw [System.ArgumentException]::new('action must be read, set or remove')
    }

    $state = [ordered]@{ key_exists = $false; exists = $false; kind = $null; value = $null }
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($keyPath, $false)
    if ($null -ne $key) {
        try {
            $state.key_exists = $true
            if ($key.GetValueNames() -contains $valueName) {
                $state.exists = $true
                $state.kind = $key.GetValueKind($valueName).ToString()
                $state.value = $key.GetValue($valueName, $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            }
        }
        finally {
            $key.Dispose()
        }
    }

    $document = [ordered]@{ script = $scriptName; version = $scriptVersion; ok = $true; result = $state }
    Write-Output (ConvertTo-AsciiJson $document)
}
catch {
    $document = [ordered]@{
        script = $scriptName
        version = $scriptVersion
        ok = $false
        error = [ordered]@{ type = $_.Exception.GetType().FullName; message = $_.Exception.Message }
    }
    Write-Output (ConvertTo-AsciiJson $document)
    exit 1
}
