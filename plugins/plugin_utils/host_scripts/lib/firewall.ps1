# mailflow-host-library: firewall v1
# Windows Defender Firewall as a host script reads it: the inbound rules that open given ports, found by their port
# filters (Get-NetFirewallPortFilter, class MSFT_NetFirewallPortFilter) and joined to their rules
# (Get-NetFirewallRule, class MSFT_NetFirewallRule) by InstanceID, on this host or over a CIM session to another.
# A rule is identified by its Name (the InstanceID), which Windows does not translate; DisplayName is localized and
# only carried for people. The active store is read: what the firewall enforces, Group Policy rules included.
# Port filters count when their LocalPort lists a port or a range that holds it; keywords (Any, RPC) do not.

function ConvertTo-MailflowFirewallProtocol([string]$Protocol) {
    # Port filters give the protocol by name or by IANA number.
    switch ($Protocol.ToUpperInvariant()) {
        '6' { return 'TCP' }
        '17' { return 'UDP' }
        default { return $Protocol.ToUpperInvariant() }
    }
}

function Test-MailflowPortListed([string[]]$LocalPorts, [int[]]$Ports) {
    foreach ($entry in $LocalPorts) {
        foreach ($port in $Ports) {
            if ($entry -match '^\d+$' -and [int]$entry -eq $port) {
                return $true
            }
            if ($entry -match '^(\d+)-(\d+)$' -and [int]$Matches[1] -le $port -and $port -le [int]$Matches[2]) {
                return $true
            }
        }
    }
    $false
}

function Get-MailflowFirewallState([object]$CimSession, [int[]]$Ports) {
    # Whether the domain profile's firewall is on, and the inbound TCP/UDP rules whose port filter lists one of
    # Ports: name, display name, protocol, local ports, enabled, action, and the store the rule comes from.
    $options = @{ PolicyStore = 'ActiveStore'; ErrorAction = 'Stop' }
    if ($null -ne $CimSession) {
        $options.CimSession = $CimSession
    }
    $domainProfile = Get-NetFirewallProfile -Name 'Domain' @options
    $filters = @{}
    foreach ($filter in @(Get-NetFirewallPortFilter -All @options)) {
        $protocol = ConvertTo-MailflowFirewallProtocol ([string]$filter.Protocol)
        $localPorts = [string[]]@($filter.LocalPort | ForEach-Object { [string]$_ })
        if (($protocol -eq 'TCP' -or $protocol -eq 'UDP') -and (Test-MailflowPortListed $localPorts $Ports)) {
            $filters[[string]$filter.InstanceID] = [ordered]@{ protocol = $protocol; local_ports = $localPorts }
        }
    }
    $rules = [System.Collections.Generic.List[object]]::new()
    if ($filters.Count -gt 0) {
        foreach ($rule in @(Get-NetFirewallRule -Direction Inbound @options)) {
            $filter = $filters[[string]$rule.InstanceID]
            if ($null -eq $filter) {
                continue
            }
            $rules.Add([ordered]@{
                name = [string]$rule.Name
                display_name = [string]$rule.DisplayName
                protocol = $filter.protocol
                local_ports = $filter.local_ports
                enabled = ($rule.Enabled.ToString() -eq 'True')
                action = $rule.Action.ToString()
                source = $rule.PolicyStoreSourceType.ToString()
            })
        }
    }
    [ordered]@{ enabled = ($domainProfile.Enabled.ToString() -ne 'False'); rules = $rules.ToArray() }
}
