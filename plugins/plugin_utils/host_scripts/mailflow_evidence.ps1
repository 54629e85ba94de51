# mailflow-host-script: mailflow_evidence v1
# The symptoms of KB 979174 and KB 3212877 on this host, within a window of time: delivery queues with their
# LastError (Exchange servers, through a session to the server's own Exchange endpoint), events counted by log,
# provider, ID and event data field (Get-WinEvent -FilterHashtable, never message text), and the send protocol log
# lines (TransportRoles\Logs\*\ProtocolLog\SmtpSend, CSV) whose reply carries given enhanced status codes. Counts and
# the newest few samples of each; reads only.
# input since_seconds: int?
# input since_time: datetime?
# input samples: int
# input event_queries: list
# input protocol_log_status: list
# input domain_username: str?
# input domain_password: str?
# output host: dict
# output exchange: dict?
# output queues: list
# output events: list
# output protocol_log: dict?
# requires directory
# requires exchange
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'
$invariant = [System.Globalization.CultureInfo]::InvariantCulture
$sampleCount = [int]$params.samples

function Get-MailflowEventData([object]$Record) {
    # The event's data fields by name: EventData's Data elements by their Name (classic sources such as
    # MSExchangeTransport have none: by position, 1..n), and UserData's elements' attributes as Element.attribute.
    $xml = [xml]$Record.ToXml()
    $data = [ordered]@{}
    $eventData = $xml.DocumentElement.SelectSingleNode("*[local-name()='EventData']")
    if ($null -ne $eventData) {
        $position = 0
        foreach ($node in $eventData.SelectNodes("*[local-name()='Data']")) {
            $position += 1
            $name = $node.GetAttribute('Name')
            if (-not $name) {
                $name = [string]$position
            }
            $data[$name] = $node.InnerText
        }
    }
    $userData = $xml.DocumentElement.SelectSingleNode("*[local-name()='UserData']")
    if ($null -ne $userData) {
        foreach ($element in $userData.SelectNodes('.//*')) {
            foreach ($attribute in $element.Attributes) {
                if ($attribute.Prefix -ne 'xmlns' -and $attribute.LocalName -ne 'xmlns') {
                    $data['{0}.{1}' -f $element.LocalName, $attribute.LocalName] = $attribute.Value
                }
            }
        }
    }
    $data
}

function Find-MailflowEvents([object]$Query, [DateTime]$Since, [int]$Samples) {
    $filter = @{ LogName = [string]$Query.log; ProviderName = [string]$Query.provider; StartTime = $Since }
    if (@($Query.ids).Count -gt 0) {
        $filter.Id = [int[]]@($Query.ids)
    }
    if (@($Query.levels).Count -gt 0) {
        $filter.Level = [int[]]@($Query.levels)
    }
    $found = @()
    try {
        $found = @(Get-WinEvent -FilterHashtable $filter -ErrorAction Stop)
    }
    catch {
        # No event, no such log or provider on this host: nothing to count. Anything else is a real failure.
        if ([string]$_.FullyQualifiedErrorId -notlike 'NoMatching*') {
            throw
        }
    }
    $wanted = @($Query.values | ForEach-Object { ([string]$_).ToUpperInvariant() })
    $count = 0
    $byId = [ordered]@{}
    $kept = [System.Collections.Generic.List[object]]::new()
    foreach ($record in $found) {
        $data = $null
        if ($Query.field) {
            $data = Get-MailflowEventData $record
            $value = if ($data.Contains([string]$Query.field)) { ([string]$data[[string]$Query.field]).ToUpperInvariant() } else { '' }
            if ($wanted -notcontains $value) {
                continue
            }
        }
        $count += 1
        $byId[[string]$record.Id] = 1 + [int]$byId[[string]$record.Id]
        if ($kept.Count -lt $Samples) {
            if ($null -eq $data) {
                $data = Get-MailflowEventData $record
            }
            $kept.Add([ordered]@{
                time = $record.TimeCreated.ToUniversalTime().ToString('o')
                id = $record.Id
                record_id = $record.RecordId
                provider = $record.ProviderName
                level = [int]$record.Level
                category = $record.TaskDisplayName
                data = $data
            })
        }
    }
    [ordered]@{ key = [string]$Query.key; count = $count; by_id = $byId; samples = $kept.ToArray() }
}

function Find-MailflowProtocolLogLines([string[]]$Directories, [DateTime]$Since, [string[]]$Statuses, [int]$Samples) {
    # Exchange's protocol logs are CSV with a '#Fields:' header. A line counts when its reply (the data field)
    # starts with an SMTP code and one of the enhanced status codes, at or after Since.
    $files = 0
    $matched = [System.Collections.Generic.List[object]]::new()
    foreach ($directory in $Directories) {
        if (-not [System.IO.Directory]::Exists($directory)) {
            continue
        }
        foreach ($file in [System.IO.DirectoryInfo]::new($directory).GetFiles('*.LOG')) {
            if ($file.LastWriteTimeUtc -lt $Since) {
                continue
            }
            $files += 1
            $fields = $null
            # The Transport service keeps today's file open for writing.
            $stream = [System.IO.FileStream]::new($file.FullName, 'Open', 'Read', 'ReadWrite')
            $reader = [System.IO.StreamReader]::new($stream)
            try {
                while ($null -ne ($line = $reader.ReadLine())) {
                    if ($line.StartsWith('#Fields:')) {
                        $fields = [string[]]@($line.Substring(8).Trim().Split(','))
                        continue
                    }
                    if ($line.StartsWith('#') -or $null -eq $fields) {
                        continue
                    }
                    $candidate = $false
                    foreach ($status in $Statuses) {
                        if ($line.Contains($status)) {
                            $candidate = $true
                        }
                    }
                    if (-not $candidate) {
                        continue
                    }
                    $record = ConvertFrom-Csv -InputObject $line -Header $fields
                    $reply = [regex]::Match([string]$record.data, '^\d{3} (\d\.\d{1,3}\.\d{1,3})\b')
                    if (-not $reply.Success -or $Statuses -notcontains $reply.Groups[1].Value) {
                        continue
                    }
                    $time = [DateTime]::Parse([string]$record.'date-time', $invariant, [System.Globalization.DateTimeStyles]'AdjustToUniversal, AssumeUniversal')
                    if ($time -lt $Since) {
                        continue
                    }
                    $matched.Add([ordered]@{
                        time = $time.ToString('o')
                        connector = [string]$record.'connector-id'
                        session = [string]$record.'session-id'
                        remote = [string]$record.'remote-endpoint'
                        data = [string]$record.data
                    })
                }
            }
            finally {
                $reader.Dispose()
                $stream.Dispose()
            }
        }
    }
    $newest = @($matched | Sort-Object -Property { $_.time } -Descending | Select-Object -First $Samples)
    [ordered]@{ files = $files; count = $matched.Count; samples = $newest }
}

$identity = Get-MailflowComputerIdentity
$now = [DateTime]::UtcNow
$since = $now.AddSeconds(-[int]$params.since_seconds)
if ($null -ne $params.since_time) {
    $since = [DateTime]::Parse([string]$params.since_time, $invariant, [System.Globalization.DateTimeStyles]::RoundtripKind).ToUniversalTime()
}
$result = [ordered]@{
    host = [ordered]@{ name = $identity.name; fqdn = $identity.fqdn; is_dc = $identity.is_dc; now = $now.ToString('o'); since = $since.ToString('o') }
    exchange = $null
    queues = @()
    events = @()
    protocol_log = $null
}

$events = [System.Collections.Generic.List[object]]::new()
foreach ($query in @($params.event_queries)) {
    $null = $events.Add((Find-MailflowEvents $query $since $sampleCount))
}
$result.events = $events.ToArray()

$setup = Get-MailflowExchangeSetup
if ($null -ne $setup) {
    $result.exchange = $setup
    $logs = [string[]]@(
        [System.IO.Path]::Combine($setup.install_path, 'TransportRoles\Logs\Hub\ProtocolLog\SmtpSend'),
        [System.IO.Path]::Combine($setup.install_path, 'TransportRoles\Logs\FrontEnd\ProtocolLog\SmtpSend')
    )
    $statuses = [string[]]@($params.protocol_log_status)
    $result.protocol_log = Find-MailflowProtocolLogLines $logs $since $statuses $sampleCount
    $commands = [string[]]@('Get-Queue')
    $session = Enter-MailflowExchangeSession $identity.fqdn $commands $params.domain_username $params.domain_password
    try {
        $queues = [System.Collections.Generic.List[object]]::new()
        $found = Get-Queue -Server $identity.fqdn
        foreach ($queue in @($found)) {
            $null = $queues.Add([ordered]@{
                identity = $queue.Identity.ToString()
                delivery_type = $queue.DeliveryType.ToString()
                next_hop_domain = [string]$queue.NextHopDomain
                status = $queue.Status.ToString()
                message_count = [int]$queue.MessageCount
                last_error = [string]$queue.LastError
            })
        }
        $result.queues = $queues.ToArray()
    }
    finally {
        Remove-PSSession -Session $session
    }
}
$result
