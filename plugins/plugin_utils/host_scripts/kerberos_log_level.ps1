# mailflow-host-script: kerberos_log_level v2
# KB 979174 step 5: reads, sets or removes HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel
# and returns the value as it stands after the action, so that a change needs no third round trip to verify it.
# The registry is used through .NET: nothing depends on a localized tool's text.
# input action: str read|set|remove
# input value: int?
# output key_exists: bool
# output exists: bool
# output kind: str?
# output value: any?
# writes registry: HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel DWord
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'
$keyPath = 'SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters'
$valueName = 'LogLevel'

if ($params.action -eq 'set') {
    $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey($keyPath)
    try {
        # A value of another kind (REG_SZ "1") is not honoured by the Kerberos client, so it is replaced.
        if (($key.GetValueNames() -contains $valueName) -and ($key.GetValueKind($valueName) -ne [Microsoft.Win32.RegistryValueKind]::DWord)) {
            $key.DeleteValue($valueName)
        }
        # SetValue takes a REG_DWORD as a signed Int32 (0xFFFFFFFF is -1); the controller sends it that way.
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
        # Value names compare case-insensitively, as -contains does: 'loglevel' is the same value.
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
$state
