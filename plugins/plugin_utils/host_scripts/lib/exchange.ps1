# mailflow-host-library: exchange v1
# Exchange cmdlets the way Microsoft supports them: a remote PowerShell session to the server's own Exchange
# endpoint (http://<fqdn>/PowerShell, Kerberos), with the explicit credentials when the task gives them
# (domain_username and domain_password). From a WinRM logon by NTLM, that session is a second hop: without
# credentials it fails, and the controller says why. The Exchange Management Shell snap-in is not used: loading it
# into another process is not supported.
# Requires the directory library (New-MailflowCredential).

function Get-MailflowExchangeSetup {
    # Whether Exchange Server 2013-2019 is installed, from its setup key; $null when it is not.
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey('SOFTWARE\Microsoft\ExchangeServer\v15\Setup', $false)
    if ($null -eq $key) {
        return $null
    }
    try {
        [ordered]@{
            install_path = [string]$key.GetValue('MsiInstallPath', '')
            version = '{0}.{1}.{2}.{3}' -f $key.GetValue('MsiProductMajor', 0), $key.GetValue('MsiProductMinor', 0), $key.GetValue('MsiBuildMajor', 0), $key.GetValue('MsiBuildMinor', 0)
        }
    }
    finally {
        $key.Dispose()
    }
}

function Enter-MailflowExchangeSession([string]$Server, [string[]]$CommandName, [string]$UserName, [string]$Password) {
    # Imports only the cmdlets the script needs, as proxy functions in this scope; returns the session to remove.
    $options = @{
        ConfigurationName = 'Microsoft.Exchange'
        ConnectionUri = "http://$Server/PowerShell/"
        Authentication = 'Kerberos'
        ErrorAction = 'Stop'
    }
    $credential = New-MailflowCredential $UserName $Password
    if ($null -ne $credential) {
        $options.Credential = $credential
    }
    $session = New-PSSession @options
    $null = Import-PSSession -Session $session -CommandName $CommandName -AllowClobber -DisableNameChecking -ErrorAction Stop
    $session
}
