# mailflow-host-script: w32time_sync v1
# KB 979174 step 1: the W32Time configuration (Type, NtpServer, AnnounceFlags, as the service key and Group Policy
# hold them), the service's start type and status, and this host's clock offset to each peer, measured by an SNTP
# exchange from the host (UDP 123; never w32tm's text). The PDC emulator and the DCs come from the parameters or,
# when they are not given, from the directory through the DC locator's DC or domain_server (a second hop from a
# member server), which is then also the DC the host uses. 'configure' writes the values it is given, makes the service start automatically, restarts it (so
# that it takes the new values), resyncs (w32tm /resync, run for its exit code only) and measures again.
# ntp_peers, the forest-root PDC emulator's reliable peers, are measured on the PDC emulator only.
# input action: str read|configure
# input domain_server: str?
# input domain_username: str?
# input domain_password: str?
# input pdc_emulator: str?
# input domain_controllers: list?
# input ntp_peers: list?
# input dc_in_use: str?
# input timeout_ms: int
# input type: str?
# input ntp_server: str?
# input announce_flags: int?
# input automatic: bool?
# output identity: dict
# output pdc_emulator: str?
# output domain_controllers: list
# output forest_root: bool?
# output dc_in_use: str?
# output configured: dict
# output policy: dict
# output service: dict
# output offsets: list
# output resync_exit_code: int?
# writes registry: HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters\Type String
# writes registry: HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters\NtpServer String
# writes registry: HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Config\AnnounceFlags DWord
# writes service: W32Time start type Automatic, restarted
# writes clock: w32tm /resync
# requires directory
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'

function ConvertFrom-NtpTimestamp([byte[]]$Bytes, [int]$At) {
    # 32 bits of seconds since 1900 and 32 bits of fraction, big-endian. A seconds value below 2^31 is in era 1
    # (from February 2036), as RFC 4330 section 3 reads it.
    $seconds = [int64]0
    $fraction = [int64]0
    for ($i = 0; $i -lt 4; $i++) {
        $seconds = $seconds * 256 + $Bytes[$At + $i]
        $fraction = $fraction * 256 + $Bytes[$At + 4 + $i]
    }
    if ($seconds -lt 2147483648) {
        $seconds += 4294967296
    }
    $epoch = [DateTime]::new(1900, 1, 1, 0, 0, 0, [DateTimeKind]::Utc)
    $epoch.AddTicks($seconds * 10000000 + [int64][math]::Floor($fraction * 10000000 / 4294967296))
}

function Measure-NtpOffset([string]$Peer, [int]$TimeoutMs) {
    # One SNTP client exchange (RFC 4330). The offset is how far this host's clock is ahead of the peer's:
    # -((T2 - T1) + (T3 - T4)) / 2, with T1 and T4 by this host's clock, T2 and T3 by the peer's.
    $measured = [ordered]@{ peer = $Peer; answered = $false; offset = $null; error = $null }
    $client = [System.Net.Sockets.UdpClient]::new()
    try {
        $client.Client.ReceiveTimeout = $TimeoutMs
        $client.Connect($Peer, 123)
        $request = [byte[]]::new(48)
        # LI 0, version 4, mode 3 (client); the transmit timestamp is a nonce the server echoes as the originate one.
        $request[0] = 0x23
        $nonce = [Guid]::NewGuid().ToByteArray()
        [Array]::Copy($nonce, 0, $request, 40, 8)
        $sent = [DateTime]::UtcNow
        $null = $client.Send($request, $request.Length)
        $from = [System.Net.IPEndPoint]::new([System.Net.IPAddress]::Any, 0)
        $reply = $client.Receive([ref]$from)
        $received = [DateTime]::UtcNow
        $echoed = ($reply.Length -ge 48) -and (($reply[0] -band 7) -eq 4)
        for ($i = 0; $echoed -and $i -lt 8; $i++) {
            $echoed = $reply[24 + $i] -eq $request[40 + $i]
        }
        if (-not $echoed) {
            $measured.error = 'BadReply'
        }
        else {
            $peerReceived = ConvertFrom-NtpTimestamp $reply 32
            $peerSent = ConvertFrom-NtpTimestamp $reply 40
            $ahead = (($peerReceived - $sent).TotalSeconds + ($peerSent - $received).TotalSeconds) / 2
            $measured.answered = $true
            $measured.offset = [math]::Round(-$ahead, 3)
        }
    }
    catch [System.Net.Sockets.SocketException] {
        # TimedOut: no answer; ConnectionReset: ICMP port unreachable; HostNotFound: no such name. Enum names only.
        $measured.error = $_.Exception.SocketErrorCode.ToString()
    }
    finally {
        $client.Close()
    }
    $measured
}

function Read-W32TimeValues([string]$Root) {
    # Type and NtpServer under Parameters, AnnounceFlags under Config, of the service key or of its policy key.
    $values = [ordered]@{ type = $null; ntp_server = $null; announce_flags = $null }
    foreach ($item in @(@('type', 'Parameters', 'Type'), @('ntp_server', 'Parameters', 'NtpServer'), @('announce_flags', 'Config', 'AnnounceFlags'))) {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey("$Root\$($item[1])", $false)
        if ($null -eq $key) {
            continue
        }
        try {
            if ($key.GetValueNames() -contains $item[2]) {
                $values[$item[0]] = $key.GetValue($item[2], $null, [Microsoft.Win32.RegistryValueOptions]::DoNotExpandEnvironmentNames)
            }
        }
        finally {
            $key.Dispose()
        }
    }
    $values
}

$serviceRoot = 'SYSTEM\CurrentControlSet\Services\W32Time'
$result = [ordered]@{}
$identity = Get-MailflowComputerIdentity
$user = $params.domain_username
$password = $params.domain_password
$pdc = $params.pdc_emulator
$dcs = [System.Collections.Generic.List[string]]::new()
foreach ($name in @($params.domain_controllers)) {
    if ($name) {
        $null = $dcs.Add([string]$name)
    }
}
$forestRoot = $null
# The DC the host uses: itself on a DC; on a member, what the read found (the change script is given it).
$dcInUse = $params.dc_in_use
if ($identity.is_dc) {
    $dcInUse = $identity.fqdn
}
if ($identity.part_of_domain -and $params.action -eq 'read' -and ((-not $pdc) -or ($dcs.Count -eq 0))) {
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
    if (-not $dcInUse) {
        $dcInUse = $server
    }
    $domain = Get-MailflowDomain $server $identity.domain $user $password
    if (-not $pdc) {
        $pdc = $domain.PdcRoleOwner.Name
    }
    if ($dcs.Count -eq 0) {
        foreach ($controller in $domain.DomainControllers) {
            $null = $dcs.Add($controller.Name)
        }
    }
    # The forest is named after its root domain.
    $forestRoot = ($domain.Forest.Name -eq $domain.Name)
}

if ($params.action -eq 'configure') {
    $settings = @(@('Parameters', 'Type', $params.type), @('Parameters', 'NtpServer', $params.ntp_server), @('Config', 'AnnounceFlags', $params.announce_flags))
    foreach ($setting in $settings) {
        if ($null -eq $setting[2]) {
            continue
        }
        $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey("$serviceRoot\$($setting[0])")
        try {
            if ($setting[1] -eq 'AnnounceFlags') {
                $key.SetValue($setting[1], [int]$setting[2], [Microsoft.Win32.RegistryValueKind]::DWord)
            }
            else {
                $key.SetValue($setting[1], [string]$setting[2], [Microsoft.Win32.RegistryValueKind]::String)
            }
        }
        finally {
            $key.Dispose()
        }
    }
    if ($params.automatic) {
        Set-Service -Name W32Time -StartupType Automatic
    }
    # A restart starts a stopped service too, and the service reads its configuration when it starts.
    Restart-Service -Name W32Time -Force
    # Right after a restart the service may not have a source yet: retry a few times.
    for ($attempt = 0; $attempt -lt 3; $attempt++) {
        $null = & w32tm.exe /resync
        $result.resync_exit_code = $LASTEXITCODE
        if ($LASTEXITCODE -eq 0) {
            break
        }
        Start-Sleep -Seconds 2
    }
}
else {
    $result.resync_exit_code = $null
}

# The forest-root PDC emulator's reliable peers are measured on that host only: elsewhere they are no source.
$rootPeers = @()
if ($pdc -and (($pdc -eq $identity.fqdn) -or ($pdc -eq $identity.name)) -and ($forestRoot -ne $false)) {
    $rootPeers = @($params.ntp_peers)
}
# Every peer once (names compare case-insensitively), never this host itself.
$seen = [System.Collections.Generic.HashSet[string]]::new([StringComparer]::OrdinalIgnoreCase)
$offsets = [System.Collections.Generic.List[object]]::new()
foreach ($peer in @($pdc, $dcInUse) + $dcs.ToArray() + $rootPeers) {
    if (-not $peer) {
        continue
    }
    $self = ($peer -eq $identity.fqdn) -or ($peer -eq $identity.name)
    if (-not $self -and $seen.Add([string]$peer)) {
        $null = $offsets.Add((Measure-NtpOffset $peer $params.timeout_ms))
    }
}

$service = Get-Service -Name W32Time
$result.identity = $identity
$result.pdc_emulator = $pdc
$result.domain_controllers = $dcs.ToArray()
$result.forest_root = $forestRoot
$result.dc_in_use = $dcInUse
$result.configured = Read-W32TimeValues $serviceRoot
$result.policy = Read-W32TimeValues 'SOFTWARE\Policies\Microsoft\W32Time'
$result.service = [ordered]@{ start_type = $service.StartType.ToString(); status = $service.Status.ToString() }
$result.offsets = $offsets.ToArray()
$result
