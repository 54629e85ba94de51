# mailflow-host-library: directory v1
# Active Directory as a host script reaches it: the host's domain and site, a directory context for the domain or
# one DC, and directory entries. Every binding uses the explicit credentials when the task gives them
# (domain_username and domain_password), else the logon's own, which a WinRM logon by NTLM cannot pass on to a DC:
# the second hop. The controller recognises that failure by the exception's type and HResult and says so.
# Nothing here reads text meant for people: CIM properties, .NET directory objects and their enums only.

function New-MailflowCredential([string]$UserName, [string]$Password) {
    if (-not $UserName) {
        return $null
    }
    $secure = ConvertTo-SecureString -String $Password -AsPlainText -Force
    [System.Management.Automation.PSCredential]::new($UserName, $secure)
}

function Get-MailflowComputerIdentity {
    # Local facts, no directory access: the computer's DNS domain, its NetBIOS name and FQDN, and whether it is a DC
    # (DomainRole 4 and 5 are the backup and primary domain controller).
    $system = Get-CimInstance -ClassName Win32_ComputerSystem
    [ordered]@{
        name = $system.Name
        fqdn = "$($system.DNSHostName).$($system.Domain)".ToLowerInvariant()
        domain = $system.Domain
        part_of_domain = [bool]$system.PartOfDomain
        is_dc = ($system.DomainRole -ge 4)
    }
}

function Get-MailflowDirectoryContext([string]$ContextType, [string]$Name, [string]$UserName, [string]$Password) {
    # ContextType: Domain, Forest or DirectoryServer (one DC by name).
    $type = [System.DirectoryServices.ActiveDirectory.DirectoryContextType]$ContextType
    if ($UserName) {
        return [System.DirectoryServices.ActiveDirectory.DirectoryContext]::new($type, $Name, $UserName, $Password)
    }
    [System.DirectoryServices.ActiveDirectory.DirectoryContext]::new($type, $Name)
}

function Get-MailflowDomain([string]$DomainServer, [string]$DomainName, [string]$UserName, [string]$Password) {
    # The domain through a given DC (domain_server) or through the DC locator for the domain's name.
    if ($DomainServer) {
        $context = Get-MailflowDirectoryContext 'DirectoryServer' $DomainServer $UserName $Password
        return [System.DirectoryServices.ActiveDirectory.DomainController]::GetDomainController($context).Domain
    }
    $context = Get-MailflowDirectoryContext 'Domain' $DomainName $UserName $Password
    [System.DirectoryServices.ActiveDirectory.Domain]::GetDomain($context)
}

function New-MailflowDirectoryEntry([string]$Path, [string]$UserName, [string]$Password) {
    # LDAP://server/DN or GC://server/DN; Secure: Kerberos or NTLM, signed and sealed.
    $secure = [System.DirectoryServices.AuthenticationTypes]::Secure -bor [System.DirectoryServices.AuthenticationTypes]::Sealing
    if ($UserName) {
        return [System.DirectoryServices.DirectoryEntry]::new($Path, $UserName, $Password, $secure)
    }
    [System.DirectoryServices.DirectoryEntry]::new($Path, $null, $null, $secure)
}

function Find-MailflowDirectoryObjects([object]$SearchRoot, [string]$Filter, [string[]]$Properties) {
    # Every match, paged, with the properties asked for, as dictionaries of property name -> values.
    $searcher = [System.DirectoryServices.DirectorySearcher]::new($SearchRoot, $Filter, $Properties)
    $searcher.PageSize = 500
    $found = [System.Collections.Generic.List[object]]::new()
    try {
        foreach ($result in $searcher.FindAll()) {
            $entry = [ordered]@{}
            foreach ($name in $Properties) {
                $entry[$name] = @($result.Properties[$name.ToLowerInvariant()])
            }
            $found.Add($entry)
        }
    }
    finally {
        $searcher.Dispose()
    }
    , $found.ToArray()
}
