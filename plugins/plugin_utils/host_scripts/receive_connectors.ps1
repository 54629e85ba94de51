# mailflow-host-script: receive_connectors v1
# KB 979174 step 6: this Mailbox server's receive connectors (Get-ReceiveConnector), and Set-ReceiveConnector of
# AuthMechanism and PermissionGroups to the values given for each connector. Exchange is reached the supported way,
# through a session to the server's own Exchange endpoint. A refusal (Exchange validates the connector it would
# save) is returned with Exchange's exception type, which implicit remoting only carries in the deserialized
# exception; the connectors are read after any change, so the change needs no third round trip to verify it.
# Enum values are read as their names (Tls, ExchangeServer, ...), which Exchange does not translate.
# input action: str read|set
# input changes: list
# input domain_username: str?
# input domain_password: str?
# output exchange: dict?
# output server: str?
# output connectors: list
# output failures: list
# writes exchange: receive connectors' AuthMechanism and PermissionGroups (Set-ReceiveConnector)
# requires directory
# requires exchange
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'

function ConvertTo-FlagNames([object]$Value) {
    , [string[]]@($Value.ToString() -split ',' | ForEach-Object { $_.Trim() } | Where-Object { $_ })
}

function ConvertTo-Strings([object]$Values) {
    , [string[]]@($Values | ForEach-Object { $_.ToString() })
}

$result = [ordered]@{ exchange = $null; server = $null; connectors = @(); failures = @() }
$setup = Get-MailflowExchangeSetup
if ($null -ne $setup) {
    $result.exchange = $setup
    $identity = Get-MailflowComputerIdentity
    $result.server = $identity.name
    $commands = [string[]]@('Get-ReceiveConnector', 'Set-ReceiveConnector')
    $session = Enter-MailflowExchangeSession $identity.fqdn $commands $params.domain_username $params.domain_password
    try {
        $failures = [System.Collections.Generic.List[object]]::new()
        if ($params.action -eq 'set') {
            foreach ($change in @($params.changes)) {
                $settings = @{ Identity = [string]$change.identity; ErrorAction = 'Stop' }
                if ($null -ne $change.auth_mechanism) {
                    $settings.AuthMechanism = [string]$change.auth_mechanism
                }
                if ($null -ne $change.permission_groups) {
                    $settings.PermissionGroups = [string]$change.permission_groups
                }
                try {
                    Set-ReceiveConnector @settings
                }
                catch {
                    # Through implicit remoting the error is a RemoteException; Exchange's own type travels in it.
                    $type = $_.Exception.GetType().FullName
                    if ($_.Exception -is [System.Management.Automation.RemoteException] -and $null -ne $_.Exception.SerializedRemoteException) {
                        $type = ([string]$_.Exception.SerializedRemoteException.PSObject.TypeNames[0]) -replace '^Deserialized\.', ''
                    }
                    $null = $failures.Add([ordered]@{ identity = [string]$change.identity; type = $type; message = $_.Exception.Message })
                }
            }
        }
        elseif ($params.action -ne 'read') {
            throw [System.ArgumentException]::new('action must be read or set')
        }
        $connectors = [System.Collections.Generic.List[object]]::new()
        $found = Get-ReceiveConnector -Server $identity.name
        foreach ($connector in @($found)) {
            $null = $connectors.Add([ordered]@{
                identity = $connector.Identity.ToString()
                name = [string]$connector.Name
                transport_role = $connector.TransportRole.ToString()
                bindings = ConvertTo-Strings $connector.Bindings
                auth_mechanism = ConvertTo-FlagNames $connector.AuthMechanism
                permission_groups = ConvertTo-FlagNames $connector.PermissionGroups
                enabled = [bool]$connector.Enabled
            })
        }
        $result.connectors = $connectors.ToArray()
        $result.failures = $failures.ToArray()
    }
    finally {
        Remove-PSSession -Session $session
    }
}
$result
