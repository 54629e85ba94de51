# mailflow-host-script: kerberos_firewall v1
# KB 979174 step 4 on a domain controller: enables the existing inbound rules it is given by Name (the ID, the same
# in every language), adds the collection's own rules for ports that no rule opens, and returns the DC's inbound
# rules for TCP/UDP 88 and 464 after the change, so that the change needs no third round trip to verify it.
# input enable: list
# input create: list
# output firewall: dict
# writes firewall: inbound rules for TCP/UDP 88 and 464 (enable existing ones, add mailflow.remediation-Kerberos-*)
# requires firewall
param([Parameter(Mandatory = $true)] [object] $params)
$ErrorActionPreference = 'Stop'

foreach ($name in @($params.enable)) {
    Enable-NetFirewallRule -Name ([string]$name) -PolicyStore PersistentStore
}
foreach ($rule in @($params.create)) {
    # The KDC answers both ports in lsass.exe, as the rules Windows adds at promotion say; the group marks the rule
    # as the collection's for whoever reads the firewall later.
    $null = New-NetFirewallRule -Name ([string]$rule.name) -DisplayName ([string]$rule.display_name) -Group 'mailflow.remediation' -Direction Inbound -Action Allow -Protocol ([string]$rule.protocol) -LocalPort ([string]$rule.port) -Program '%SystemRoot%\System32\lsass.exe' -Profile Any -Enabled True -PolicyStore PersistentStore
}

$state = [ordered]@{ firewall = (Get-MailflowFirewallState $null ([int[]]@(88, 464))) }
$state
