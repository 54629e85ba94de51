# mailflow-host-script: kerberos_ports v1
# KB 979174 step 4: whether Kerberos reaches the domain controllers, and on a DC which inbound rules let it in.
# From this host to each DC (the given ones, else every DC of the host's domain, found through the directory):
# TCP 88 and 464 by a connect, UDP 88 by a minimal Kerberos AS-REQ for a principal that does not exist, whose answer
# (a KRB-ERROR included) shows a KDC listening; no answer is a drop somewhere on the way. For a DC that leaves a
# port unanswered, its inbound rules are read over CIM (WinRM) to tell its own firewall from one in between. On a DC,
# its own inbound rules for TCP/UDP 88 and 464. Socket error codes and rule names only, never text for people.
# input domain_controllers: list?
# input timeout_ms: int
# input domain_server: str?
# input domain_username: str?
# input domain_password: str?
# output host: dict
# output firewall: dict?
# output probes: list
# output dc_firewalls: list
# requires directory
# requires firewall
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'
$kerberosPorts = [int[]]@(88, 464)
$timeout = [int]$params.timeout_ms

function New-DerElement([int]$Tag, [byte[]]$Content) {
    # One DER element: tag, definite length (short or long form), content.
    $length = $Content.Length
    if ($length -lt 128) {
        $header = [byte[]]@($Tag, $length)
    }
    else {
        $size = [System.Collections.Generic.List[byte]]::new()
        while ($length -gt 0) {
            $size.Insert(0, [byte]($length -band 255))
            $length = $length -shr 8
        }
        $header = [byte[]](@($Tag, (128 + $size.Count)) + $size.ToArray())
    }
    , [byte[]]($header + $Content)
}

function Join-DerElements([object[]]$Elements) {
    $all = [System.Collections.Generic.List[byte]]::new()
    foreach ($element in $Elements) {
        $all.AddRange([byte[]]$element)
    }
    , $all.ToArray()
}

function New-DerInteger([long]$Value) {
    # A non-negative INTEGER, big-endian, with a leading zero when the top bit would make it negative.
    $bytes = [System.Collections.Generic.List[byte]]::new()
    do {
        $bytes.Insert(0, [byte]($Value -band 255))
        $Value = $Value -shr 8
    } while ($Value -gt 0)
    if ($bytes[0] -ge 128) {
        $bytes.Insert(0, [byte]0)
    }
    New-DerElement 2 $bytes.ToArray()
}

function New-DerString([int]$Tag, [string]$Text) {
    New-DerElement $Tag ([System.Text.Encoding]::ASCII.GetBytes($Text))
}

function New-KerberosPrincipal([int]$NameType, [string[]]$Names) {
    # PrincipalName ::= SEQUENCE { name-type [0] Int32, name-string [1] SEQUENCE OF KerberosString }
    $strings = [System.Collections.Generic.List[object]]::new()
    foreach ($name in $Names) {
        $null = $strings.Add((New-DerString 27 $name))
    }
    $nameStrings = New-DerElement 48 (Join-DerElements $strings.ToArray())
    New-DerElement 48 (Join-DerElements @((New-DerElement 160 (New-DerInteger $NameType)), (New-DerElement 161 $nameStrings)))
}

function New-KerberosProbeRequest([string]$Realm) {
    # AS-REQ (RFC 4120 5.4.1) without pre-authentication for a client principal that does not exist: a KDC answers
    # it with a KRB-ERROR (KDC_ERR_C_PRINCIPAL_UNKNOWN), which is all the probe needs.
    $random = [System.Random]::new()
    $principal = 'mailflow-kerberos-probe-{0:x8}' -f $random.Next()
    $body = Join-DerElements @(
        (New-DerElement 160 (New-DerElement 3 ([byte[]]@(0, 64, 0, 0, 0)))),
        (New-DerElement 161 (New-KerberosPrincipal 1 @($principal))),
        (New-DerElement 162 (New-DerString 27 $Realm)),
        (New-DerElement 163 (New-KerberosPrincipal 2 @('krbtgt', $Realm))),
        (New-DerElement 165 (New-DerString 24 '20370913024805Z')),
        (New-DerElement 167 (New-DerInteger $random.Next(1, 2147483647))),
        (New-DerElement 168 (New-DerElement 48 (Join-DerElements @((New-DerInteger 18), (New-DerInteger 17), (New-DerInteger 23)))))
    )
    $request = Join-DerElements @(
        (New-DerElement 161 (New-DerInteger 5)),
        (New-DerElement 162 (New-DerInteger 10)),
        (New-DerElement 164 (New-DerElement 48 $body))
    )
    New-DerElement 106 (New-DerElement 48 $request)
}

function Get-SocketErrorCode([object]$Exception) {
    # The SocketError name (ConnectionRefused, TimedOut, HostNotFound, ...) inside whatever wraps it.
    $current = $Exception
    while ($null -ne $current) {
        if ($current -is [System.Net.Sockets.SocketException]) {
            return $current.SocketErrorCode.ToString()
        }
        if ($current -is [System.AggregateException] -and $current.InnerExceptions.Count -gt 0) {
            $current = $current.InnerExceptions[0]
        }
        else {
            $current = $current.InnerException
        }
    }
    'Unknown'
}

function Get-ProbeResult([string]$ErrorCode) {
    switch ($ErrorCode) {
        'ConnectionRefused' { return 'refused' }
        'ConnectionReset' { return 'refused' }
        'TimedOut' { return 'no_answer' }
        'HostNotFound' { return 'unresolved' }
        'NoData' { return 'unresolved' }
        default { return 'error' }
    }
}

$identity = Get-MailflowComputerIdentity
$result = [ordered]@{ host = $identity; firewall = $null; probes = @(); dc_firewalls = @() }
if ($identity.is_dc) {
    $result.firewall = Get-MailflowFirewallState $null $kerberosPorts
}

$dcs = [System.Collections.Generic.List[string]]::new()
if ($null -ne $params.domain_controllers) {
    foreach ($name in @($params.domain_controllers)) {
        $null = $dcs.Add([string]$name)
    }
}
elseif (-not $identity.is_dc) {
    $domain = Get-MailflowDomain $params.domain_server $identity.domain $params.domain_username $params.domain_password
    foreach ($dc in $domain.DomainControllers) {
        $null = $dcs.Add($dc.Name.ToLowerInvariant())
    }
}

# Every probe starts at once and all share one deadline, so a run costs one timeout however many DCs drop packets.
$request = New-KerberosProbeRequest $identity.domain.ToUpperInvariant()
$pending = [System.Collections.Generic.List[object]]::new()
$clients = [System.Collections.Generic.List[System.IDisposable]]::new()
try {
    foreach ($dc in $dcs) {
        foreach ($port in $kerberosPorts) {
            $tcp = [System.Net.Sockets.TcpClient]::new()
            $null = $clients.Add($tcp)
            $null = $pending.Add([ordered]@{ dc = $dc; protocol = 'TCP'; port = $port; task = $tcp.ConnectAsync($dc, $port) })
        }
        $udp = [System.Net.Sockets.UdpClient]::new()
        $null = $clients.Add($udp)
        $probe = [ordered]@{ dc = $dc; protocol = 'UDP'; port = 88; task = $null; error = $null }
        try {
            $udp.Connect($dc, 88)
            $null = $udp.Send($request, $request.Length)
            $probe.task = $udp.ReceiveAsync()
        }
        catch {
            $probe.error = Get-SocketErrorCode $_.Exception
        }
        $null = $pending.Add($probe)
    }
    $deadline = [DateTime]::UtcNow.AddMilliseconds($timeout)
    $probes = [System.Collections.Generic.List[object]]::new()
    foreach ($item in $pending) {
        $outcome = [ordered]@{ dc = $item.dc; protocol = $item.protocol; port = $item.port; result = 'no_answer'; error = $null }
        $task = $item.task
        if ($null -eq $task) {
            $outcome.error = $item.error
            $outcome.result = Get-ProbeResult $item.error
        }
        else {
            $remaining = [int][Math]::Max(0, ($deadline - [DateTime]::UtcNow).TotalMilliseconds)
            try {
                $null = $task.Wait($remaining)
            }
            catch {
                $null = $_
            }
            if ($task.IsFaulted) {
                $outcome.error = Get-SocketErrorCode $task.Exception
                $outcome.result = Get-ProbeResult $outcome.error
            }
            elseif ($task.IsCompleted -and $item.protocol -eq 'TCP') {
                $outcome.result = 'open'
            }
            elseif ($task.IsCompleted) {
                # A KRB-ERROR is [APPLICATION 30] (0x7E), an AS-REP [APPLICATION 11] (0x6B): a KDC answered.
                $reply = $task.Result.Buffer
                $isKerberos = $reply.Length -gt 0 -and ($reply[0] -eq 126 -or $reply[0] -eq 107)
                $outcome.result = if ($isKerberos) { 'open' } else { 'not_kerberos' }
            }
        }
        $null = $probes.Add($outcome)
    }
    $result.probes = $probes.ToArray()
}
finally {
    foreach ($client in $clients) {
        $client.Dispose()
    }
}

# A DC that left a port unanswered: its own inbound rules, read over CIM, tell its firewall from one in between.
$firewalls = [System.Collections.Generic.List[object]]::new()
$silent = [System.Collections.Generic.List[string]]::new()
foreach ($probe in $result.probes) {
    if ($probe.result -eq 'no_answer' -and -not $silent.Contains($probe.dc)) {
        $null = $silent.Add($probe.dc)
    }
}
foreach ($dc in $silent) {
    $entry = [ordered]@{ dc = $dc; firewall = $null; error = $null }
    $session = $null
    try {
        $options = @{ ComputerName = $dc; OperationTimeoutSec = [Math]::Max(1, [int]($timeout / 1000)); ErrorAction = 'Stop' }
        $credential = New-MailflowCredential $params.domain_username $params.domain_password
        if ($null -ne $credential) {
            $options.Credential = $credential
        }
        $session = New-CimSession @options
        $entry.firewall = Get-MailflowFirewallState $session $kerberosPorts
    }
    catch {
        $entry.error = '{0}: {1}' -f $_.Exception.GetType().FullName, $_.Exception.Message
    }
    finally {
        if ($null -ne $session) {
            Remove-CimSession -CimSession $session
        }
    }
    $null = $firewalls.Add($entry)
}
$result.dc_firewalls = $firewalls.ToArray()
$result
