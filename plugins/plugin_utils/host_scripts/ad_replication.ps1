# mailflow-host-script: ad_replication v1
# KB 979174 step 2: a domain controller's inbound replication neighbours, per naming context, through
# System.DirectoryServices.ActiveDirectory (never repadmin's text): last result (a Win32 error code), consecutive
# failures, last success and last attempt. The DC is the host itself when it is one; from a member server, the DC
# given as domain_server or else the one the DC locator gives the host (a serverless bind; a second hop). 'sync' makes, for every naming
# context the DC holds, the DC synchronize from all its partners across sites (a pull), then push its changes out to
# all partners (PushChangeOutward, the effect of repadmin /syncall /AdeP), and returns the neighbours after it with
# the errors each sync reported.
# input action: str read|sync
# input domain_server: str?
# input domain_username: str?
# input domain_password: str?
# output identity: dict
# output dc: str
# output partitions: list
# output neighbors: list
# output sync_errors: list
# output now: datetime
# writes directory: replication of every naming context of the DC, from all partners and out to them
# requires directory
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'

function ConvertTo-IsoTime([DateTime]$Time) {
    $Time.ToUniversalTime().ToString('o')
}

$result = [ordered]@{}
$identity = Get-MailflowComputerIdentity
$user = $params.domain_username
$password = $params.domain_password
# RootDSE through ADSI, serverless (the DC locator's choice, the DC this host authenticates against) or at
# domain_server: it binds, so an unreachable DC, the second hop and refused credentials fail here with ADSI's
# HResults (0x8007203A, 0x80072020, 0x8007052E), and its dnsHostName names the DC. (DomainController.FindOne
# binds too, to validate credentials, but reports those failures in types of its own.)
$path = 'LDAP://RootDSE'
if ($identity.is_dc) {
    $path = "LDAP://$($identity.fqdn)/RootDSE"
}
elseif ($params.domain_server) {
    $path = "LDAP://$($params.domain_server)/RootDSE"
}
$rootDse = New-MailflowDirectoryEntry $path $user $password
try {
    $rootDse.RefreshCache()
    $server = [string]$rootDse.Properties['dnsHostName'][0]
}
finally {
    $rootDse.Dispose()
}
$controller = [System.DirectoryServices.ActiveDirectory.DomainController]::GetDomainController((Get-MailflowDirectoryContext 'DirectoryServer' $server $user $password))
try {
    $partitions = [System.Collections.Generic.List[string]]::new()
    foreach ($partition in $controller.Partitions) {
        $null = $partitions.Add([string]$partition)
    }
    $errors = [System.Collections.Generic.List[object]]::new()
    if ($params.action -eq 'sync') {
        $crossSite = [System.DirectoryServices.ActiveDirectory.SyncFromAllServersOptions]::CrossSite
        $pushOutward = $crossSite -bor [System.DirectoryServices.ActiveDirectory.SyncFromAllServersOptions]::PushChangeOutward
        foreach ($partition in $partitions) {
            foreach ($mode in @('pull', 'push')) {
                $options = $crossSite
                if ($mode -eq 'push') {
                    $options = $pushOutward
                }
                try {
                    $controller.SyncReplicaFromAllServers($partition, $options)
                }
                catch [System.DirectoryServices.ActiveDirectory.SyncFromAllServersOperationException] {
                    # Every partner that failed, with its Win32 error code; the message is localized and not kept.
                    foreach ($failure in $_.Exception.ErrorInformation) {
                        $null = $errors.Add([ordered]@{ partition = $partition; mode = $mode; source = $failure.SourceServer; target = $failure.TargetServer; category = $failure.ErrorCategory.ToString(); code = $failure.ErrorCode })
                    }
                }
            }
        }
    }
    $neighbors = [System.Collections.Generic.List[object]]::new()
    foreach ($neighbor in $controller.GetAllReplicationNeighbors()) {
        $null = $neighbors.Add([ordered]@{
                partition = $neighbor.PartitionName
                source = $neighbor.SourceServer
                last_result = $neighbor.LastSyncResult
                consecutive_failures = $neighbor.ConsecutiveFailureCount
                last_success = ConvertTo-IsoTime $neighbor.LastSuccessfulSync
                last_attempt = ConvertTo-IsoTime $neighbor.LastAttemptedSync
            })
    }
    $result.identity = $identity
    $result.dc = $controller.Name
    $result.partitions = $partitions.ToArray()
    $result.neighbors = $neighbors.ToArray()
    $result.sync_errors = $errors.ToArray()
    $result.now = ConvertTo-IsoTime ([DateTime]::UtcNow)
}
finally {
    $controller.Dispose()
}
$result
