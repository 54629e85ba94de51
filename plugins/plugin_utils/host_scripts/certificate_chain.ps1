# mailflow-host-script: certificate_chain v1
# KB 3212877 steps 1-3: the certificates this server presents over SMTP, the chain it builds for each from its
# LocalMachine stores, and (action import) the intermediates to add to LocalMachine\CA, from DER: nothing is copied
# to the host first, and the state after the import is returned, so the change needs no third round trip.
# Which certificates: the one a given thumbprint names (no Exchange session, so no second hop; also an IIS SMTP
# host), else those Exchange has enabled for SMTP and those the TlsCertificateName of this server's send connectors
# designates (Get-ExchangeCertificate, Get-SendConnector). The controller decides which chain to complete.
# The chain is built by X509Chain in the machine context without revocation checks. .NET Framework has no switch
# to forbid downloading a missing issuer from its AIA URL, so URL retrieval is cut to one second and every element
# reports the stores that hold it: the controller counts only what the stores hold.
# Names are compared as encoded bytes and identity is the thumbprint: nothing reads text meant for people.
# input action: str read|import
# input thumbprint: str?
# input names: list
# input import: list
# input domain_server: str?
# input domain_username: str?
# input domain_password: str?
# output exchange: dict?
# output candidates: list
# output issuers: list
# output imported: list
# writes certificates: LocalMachine\CA
# requires directory
# requires exchange
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'

function Get-MailflowStoreCertificates([string]$Name) {
    $store = [System.Security.Cryptography.X509Certificates.X509Store]::new($Name, 'LocalMachine')
    try {
        $store.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadOnly)
        , @($store.Certificates)
    }
    finally {
        $store.Close()
    }
}

function ConvertTo-MailflowNameKey([string]$Name) {
    # A distinguished name as Exchange writes it in TlsCertificateName: RDNs compared case-insensitively, blanks
    # around the separators ignored.
    (@($Name -split '(?<!\\)[,;]' | ForEach-Object { $_.Trim() } | Where-Object { $_ }) -join ',').ToUpperInvariant()
}

if ($params.action -ne 'read' -and $params.action -ne 'import') {
    throw [System.ArgumentException]::new('action must be read or import')
}

$imported = [System.Collections.Generic.List[string]]::new()
if ($params.action -eq 'import') {
    $caStore = [System.Security.Cryptography.X509Certificates.X509Store]::new('CA', 'LocalMachine')
    $caStore.Open([System.Security.Cryptography.X509Certificates.OpenFlags]::ReadWrite)
    try {
        foreach ($der in @($params.import)) {
            $certificate = [System.Security.Cryptography.X509Certificates.X509Certificate2]::new([Convert]::FromBase64String($der))
            $constraints = @($certificate.Extensions | Where-Object { $_ -is [System.Security.Cryptography.X509Certificates.X509BasicConstraintsExtension] })
            # The controller validated every certificate; a host never takes a leaf or a root into the CA store.
            if ($constraints.Count -ne 1 -or -not $constraints[0].CertificateAuthority -or $certificate.SubjectName.RawData.Length -eq 0 -or [Convert]::ToBase64String($certificate.SubjectName.RawData) -eq [Convert]::ToBase64String($certificate.IssuerName.RawData)) {
                throw [System.ArgumentException]::new("$($certificate.Thumbprint) is not an intermediate CA certificate")
            }
            if ($caStore.Certificates.Find('FindByThumbprint', $certificate.Thumbprint, $false).Count -eq 0) {
                $null = $caStore.Add($certificate)
                $null = $imported.Add($certificate.Thumbprint)
            }
        }
    }
    finally {
        $caStore.Close()
    }
}

$stores = [ordered]@{ My = (Get-MailflowStoreCertificates 'My'); CA = (Get-MailflowStoreCertificates 'CA'); Root = (Get-MailflowStoreCertificates 'Root') }
$holders = @{}
foreach ($storeName in $stores.Keys) {
    foreach ($certificate in $stores[$storeName]) {
        if (-not $holders.ContainsKey($certificate.Thumbprint)) {
            $holders[$certificate.Thumbprint] = [System.Collections.Generic.List[string]]::new()
        }
        $null = $holders[$certificate.Thumbprint].Add($storeName)
    }
}

$reasons = [ordered]@{}
$services = @{}
$exchange = $null
if ($params.thumbprint) {
    foreach ($certificate in $stores.My) {
        if ($certificate.Thumbprint -eq $params.thumbprint) {
            $reasons[$certificate.Thumbprint] = @('thumbprint')
        }
    }
}
else {
    $identity = Get-MailflowComputerIdentity
    $session = Enter-MailflowExchangeSession $identity.fqdn @('Get-ExchangeCertificate', 'Get-SendConnector') $params.domain_username $params.domain_password
    try {
        $where = @{}
        if ($params.domain_server) {
            $where.DomainController = $params.domain_server
        }
        $exchangeCertificates = @(Get-ExchangeCertificate -Server $identity.name @where)
        $sendConnectors = @(Get-SendConnector @where)
    }
    finally {
        Remove-PSSession $session
    }
    $connectors = [System.Collections.Generic.List[object]]::new()
    foreach ($connector in $sendConnectors) {
        $sources = @($connector.SourceTransportServers | ForEach-Object { [string]$_ })
        if ($sources -notcontains $identity.name) {
            continue
        }
        $null = $connectors.Add([ordered]@{
                name = [string]$connector.Name
                enabled = [bool]$connector.Enabled
                smart_hosts = @($connector.SmartHosts | ForEach-Object { [string]$_ })
                address_spaces = @($connector.AddressSpaces | ForEach-Object { [string]$_ })
                tls_certificate_name = [string]$connector.TlsCertificateName
            })
    }
    $smtp = [System.Collections.Generic.List[string]]::new()
    foreach ($exchangeCertificate in $exchangeCertificates) {
        $names = @(([string]$exchangeCertificate.Services) -split ',\s*' | Where-Object { $_ })
        $services[[string]$exchangeCertificate.Thumbprint] = $names
        if ($names -contains 'SMTP') {
            $null = $smtp.Add([string]$exchangeCertificate.Thumbprint)
        }
    }
    $exchange = [ordered]@{ server = $identity.name; send_connectors = $connectors.ToArray(); smtp_certificates = $smtp.ToArray() }
    foreach ($certificate in $stores.My) {
        $why = [System.Collections.Generic.List[string]]::new()
        if ($smtp -contains $certificate.Thumbprint) {
            $null = $why.Add('SMTP')
        }
        foreach ($connector in $connectors) {
            if ($connector.tls_certificate_name -match '^<I>(.+)<S>(.+)$') {
                $issuerKey = ConvertTo-MailflowNameKey $Matches[1]
                $subjectKey = ConvertTo-MailflowNameKey $Matches[2]
                if ((ConvertTo-MailflowNameKey $certificate.Issuer) -eq $issuerKey -and (ConvertTo-MailflowNameKey $certificate.Subject) -eq $subjectKey) {
                    $null = $why.Add("send connector $($connector.name)")
                }
            }
        }
        if ($why.Count -gt 0) {
            $reasons[$certificate.Thumbprint] = $why.ToArray()
        }
    }
}

$candidates = [System.Collections.Generic.List[object]]::new()
foreach ($certificate in $stores.My) {
    if (-not $reasons.Contains($certificate.Thumbprint)) {
        continue
    }
    $chain = [System.Security.Cryptography.X509Certificates.X509Chain]::new($true)
    try {
        $chain.ChainPolicy.RevocationMode = [System.Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
        $chain.ChainPolicy.UrlRetrievalTimeout = [TimeSpan]::FromSeconds(1)
        $null = $chain.Build($certificate)
        $elements = [System.Collections.Generic.List[object]]::new()
        foreach ($element in $chain.ChainElements) {
            $thumbprint = $element.Certificate.Thumbprint
            $null = $elements.Add([ordered]@{
                    thumbprint = $thumbprint
                    der = [Convert]::ToBase64String($element.Certificate.RawData)
                    stores = @(if ($holders.ContainsKey($thumbprint)) { $holders[$thumbprint] })
                })
        }
        $null = $candidates.Add([ordered]@{
                thumbprint = $certificate.Thumbprint
                reasons = @($reasons[$certificate.Thumbprint])
                services = @(if ($services.ContainsKey($certificate.Thumbprint)) { $services[$certificate.Thumbprint] })
                has_private_key = [bool]$certificate.HasPrivateKey
                chain = $elements.ToArray()
                chain_status = @($chain.ChainStatus | ForEach-Object { $_.Status.ToString() })
            })
    }
    finally {
        $chain.Reset()
    }
}

# The certificates in any store whose subject is one of the names asked for (the issuers and subjects of the
# certificates the task gives), and their issuers in turn, so that the controller can tell what the host already has
# above them.
$wanted = @{}
foreach ($name in @($params.names)) {
    $wanted[[string]$name] = $true
}
$issuers = [System.Collections.Generic.List[object]]::new()
$listed = @{}
$more = $true
while ($more) {
    $more = $false
    foreach ($storeName in $stores.Keys) {
        foreach ($certificate in $stores[$storeName]) {
            if ($listed.ContainsKey($certificate.Thumbprint) -or -not $wanted.ContainsKey([Convert]::ToBase64String($certificate.SubjectName.RawData))) {
                continue
            }
            $listed[$certificate.Thumbprint] = $true
            $null = $issuers.Add([ordered]@{
                    thumbprint = $certificate.Thumbprint
                    der = [Convert]::ToBase64String($certificate.RawData)
                    stores = @($holders[$certificate.Thumbprint])
                })
            $issuerName = [Convert]::ToBase64String($certificate.IssuerName.RawData)
            if (-not $wanted.ContainsKey($issuerName)) {
                $wanted[$issuerName] = $true
                $more = $true
            }
        }
    }
}

$state = [ordered]@{
    exchange = $exchange
    candidates = $candidates.ToArray()
    issuers = $issuers.ToArray()
    imported = $imported.ToArray()
}
$state
