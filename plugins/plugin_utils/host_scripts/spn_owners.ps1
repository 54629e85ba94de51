# mailflow-host-script: spn_owners v1
# KB 979174 step 3: every owner, forest-wide (the global catalog), of each service principal name asked for, and the
# account they belong on, as one DC sees them: domain_server, else the DC the host authenticates against (the DC
# locator's), so that a write that has not replicated there yet shows as missing. The SPNs are the list given, or
# each service class of host_services with this computer's short name and FQDN (SMTP/EX01, SMTP/ex01.contoso.com).
# 'write' first applies the writes in order, each one LDAP modify of an account's servicePrincipalName on that same
# DC (setspn -S / -X semantics: the controller puts removals from other accounts first, since a DC refuses to add an
# SPN another account holds), stops at the first one the DC refuses and names it, then reads the owners again.
# input action: str read|write
# input domain_server: str?
# input domain_username: str?
# input domain_password: str?
# input account: str?
# input spns: list?
# input host_services: list?
# input writes: list?
# output identity: dict
# output dc: str
# output spns: list
# output account: dict
# output owners: list
# output refused: dict?
# writes directory: servicePrincipalName of the accounts named in writes
# requires directory
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'

function ConvertTo-LdapFilterValue([string]$Value) {
    # RFC 4515: the backslash first, then the characters that mean something in a filter.
    $Value.Replace('\', '\5c').Replace('*', '\2a').Replace('(', '\28').Replace(')', '\29')
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
if ($params.domain_server) {
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

$refused = $null
if ($params.action -eq 'write') {
    foreach ($write in @($params.writes)) {
        # A slash in a DN is a separator in an ADSI path.
        $entry = New-MailflowDirectoryEntry "LDAP://$server/$(([string]$write.dn).Replace('/', '\/'))" $user $password
        try {
            $values = $entry.Properties['servicePrincipalName']
            foreach ($spn in @($write.remove)) {
                $null = $values.Remove([string]$spn)
            }
            foreach ($spn in @($write.add)) {
                $null = $values.Add([string]$spn)
            }
            $entry.CommitChanges()
        }
        catch [System.UnauthorizedAccessException], [System.Runtime.InteropServices.COMException] {
            # The DC refused the modify: kept by HResult and, from LDAP, the Win32 error (8647: the SPN is not
            # unique in the forest). The message is localized and not kept.
            $extended = $null
            if ($_.Exception -is [System.DirectoryServices.DirectoryServicesCOMException]) {
                $extended = $_.Exception.ExtendedError
            }
            $refused = [ordered]@{ dn = $write.dn; type = $_.Exception.GetType().FullName; hresult = $_.Exception.HResult; extended_error = $extended }
        }
        finally {
            $entry.Dispose()
        }
        if ($null -ne $refused) {
            break
        }
    }
}

$wanted = [System.Collections.Generic.List[string]]::new()
foreach ($spn in @($params.spns)) {
    if ($spn) {
        $null = $wanted.Add([string]$spn)
    }
}
foreach ($service in @($params.host_services)) {
    if ($service) {
        $null = $wanted.Add("$service/$($identity.name)")
        $null = $wanted.Add("$service/$($identity.fqdn)")
    }
}
$accountName = $params.account
if (-not $accountName) {
    $accountName = "$($identity.name)$"
}
$escaped = ConvertTo-LdapFilterValue $accountName
$filter = "(sAMAccountName=$escaped)"
foreach ($spn in $wanted) {
    $escaped = ConvertTo-LdapFilterValue $spn
    $filter += "(servicePrincipalName=$escaped)"
}
# The global catalog of that DC: every domain of the forest, servicePrincipalName included.
$catalog = New-MailflowDirectoryEntry "GC://$server" $user $password
try {
    $found = Find-MailflowDirectoryObjects $catalog "(|$filter)" @('sAMAccountName', 'distinguishedName', 'objectClass', 'servicePrincipalName')
}
finally {
    $catalog.Dispose()
}
$account = [ordered]@{ sam = $accountName; found = $false; dn = $null; kind = $null }
$owners = [System.Collections.Generic.List[object]]::new()
foreach ($item in $found) {
    $sam = [string]$item['sAMAccountName'][0]
    $dn = [string]$item['distinguishedName'][0]
    # objectClass lists the classes from top down to the most specific (user, computer, ...).
    $kind = [string]$item['objectClass'][-1]
    $held = [System.Collections.Generic.List[string]]::new()
    foreach ($spn in $item['servicePrincipalName']) {
        if ($wanted -contains $spn) {
            $null = $held.Add([string]$spn)
        }
    }
    if ($sam -eq $accountName) {
        $account = [ordered]@{ sam = $sam; found = $true; dn = $dn; kind = $kind }
    }
    if ($held.Count -gt 0) {
        $null = $owners.Add([ordered]@{ sam = $sam; dn = $dn; kind = $kind; spns = $held.ToArray() })
    }
}
$result.identity = $identity
$result.dc = $server
$result.spns = $wanted.ToArray()
$result.account = $account
$result.owners = $owners.ToArray()
$result.refused = $refused
$result
