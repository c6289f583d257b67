#Requires -Version 5.1
#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Installs the Sage ⇄ SSM connector agent on the Sage server as the Windows service SsmConnectorAgent:
  automatic (delayed) start, restarted on failure, its secrets encrypted for the machine (DPAPI).

.DESCRIPTION
  Run it twice: the first run checks the prerequisites, installs the agent and its settings file;
  edit C:\ProgramData\SsmConnector\config.toml; the second run checks the SQL connections with the
  configured logins and only then registers and starts the service. Nothing is installed without a
  Microsoft ODBC driver for SQL Server, and the service is not registered while a SQL connection fails.

  Prerequisites: Python 3.11 (x64) for all users, Microsoft ODBC Driver 18 for SQL Server (x64; 17 works),
  outbound HTTPS (443), and AMQP (5671) unless [bus] websockets = true.
  Layout:
    C:\Program Files\SsmConnector\venv                  the agent's Python environment
    C:\Program Files\SsmConnector\ssmconn_service.py    the service (pywin32) and its checks
    C:\Program Files\SsmConnector\ssm-agent.cmd         ssm-connector with the secrets resolved
    C:\ProgramData\SsmConnector\config.toml             settings, no secret in clear (ACL: Administrators, SYSTEM, service: read)
    C:\ProgramData\SsmConnector\secrets\NAME.dpapi      secrets, DPAPI-encrypted for this computer (same ACL)
    C:\ProgramData\SsmConnector\var\                    agent.db (watermarks, shadow, outbox): back it up
    C:\ProgramData\SsmConnector\logs\                   agent.log, rotated (10 x 10 MB)

  Secrets: the Service Bus connection string (bus-connection-string) is asked for at the first run; SQL
  passwords only if config.toml names them (${secret:sql-reader}, ${secret:sql-writer}). Store or change
  one at any time with -SetSecret NAME (the service is restarted). With Windows authentication to SQL
  Server (Trusted_Connection=yes) the service's account is the login and no SQL password exists.

.EXAMPLE
  .\install-agent.ps1 -Wheel .\ssm_connector-0.1.0-py3-none-any.whl
.EXAMPLE
  .\install-agent.ps1 -Wheel .\ssm_connector-0.1.0-py3-none-any.whl -ServiceAccount 'DOMAIN\gmsa-ssmconn$'
.EXAMPLE
  .\install-agent.ps1 -SetSecret sql-writer
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    [Parameter(Mandatory = $true, ParameterSetName = 'Install')] [string] $Wheel,
    # The service's Windows account: the virtual account NT SERVICE\SsmConnectorAgent (no password), a
    # group managed service account DOMAIN\name$ (no password), or a domain account (its password is asked).
    [Parameter(ParameterSetName = 'Install')] [string] $ServiceAccount = 'NT SERVICE\SsmConnectorAgent',
    [Parameter(ParameterSetName = 'Install')] [string] $Python = 'py -3.11',
    [Parameter(Mandatory = $true, ParameterSetName = 'SetSecret')] [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$')] [string] $SetSecret,
    [string] $InstallDir = "$env:ProgramFiles\SsmConnector",
    [string] $DataDir = "$env:ProgramData\SsmConnector"
)
$ErrorActionPreference = 'Stop'
$ServiceName = 'SsmConnectorAgent'
$SupportedOdbcDrivers = @('ODBC Driver 18 for SQL Server', 'ODBC Driver 17 for SQL Server')
$BusSecret = 'bus-connection-string'
$ConfigPath = Join-Path $DataDir 'config.toml'
$SecretsDir = Join-Path $DataDir 'secrets'
$VenvPython = Join-Path $InstallDir 'venv\Scripts\python.exe'
$ServiceScript = Join-Path $InstallDir 'ssmconn_service.py'

function Stop-WithError([string] $Message, [int] $Code) {
    Write-Host "ERROR: $Message" -ForegroundColor Red
    exit $Code
}

# Store one secret, DPAPI-encrypted for this computer, through the agent's own code (ssmconn_service.py
# protect), piped in UTF-8 on standard input: never on a command line, never in a file in clear.
function Protect-SsmSecret([string] $Name, [string] $Prompt) {
    $secure = Read-Host -AsSecureString -Prompt $Prompt
    $bstr = [Runtime.InteropServices.Marshal]::SecureStringToBSTR($secure)
    try {
        $plain = [Runtime.InteropServices.Marshal]::PtrToStringBSTR($bstr)
        if ([string]::IsNullOrEmpty($plain)) { Stop-WithError "The secret '$Name' is empty; nothing was stored." 5 }
        $previousEncoding = $OutputEncoding
        $OutputEncoding = New-Object System.Text.UTF8Encoding $false
        $plain | & $VenvPython $ServiceScript protect $Name --config $ConfigPath
        $OutputEncoding = $previousEncoding
        if ($LASTEXITCODE -ne 0) { Stop-WithError "The secret '$Name' could not be stored." 5 }
    } finally {
        [Runtime.InteropServices.Marshal]::ZeroFreeBSTR($bstr)
        $plain = $null
    }
}

# ------------------------------------------------------------------ -SetSecret: store or change one secret
if ($PSCmdlet.ParameterSetName -eq 'SetSecret') {
    if (-not (Test-Path $VenvPython)) { Stop-WithError "The agent is not installed in $InstallDir; run this script with -Wheel first." 1 }
    Protect-SsmSecret $SetSecret "Value of the secret '$SetSecret'"
    if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) {
        Restart-Service -Name $ServiceName
        Write-Host "Secret '$SetSecret' stored; service $ServiceName restarted."
    } else {
        Write-Host "Secret '$SetSecret' stored."
    }
    exit 0
}

# ------------------------------------------------------------------ 1. prerequisites, before anything is installed
# The agent reads Sage's SQL Server through a Microsoft ODBC driver: without one, install nothing.
$odbcDrivers = @(Get-OdbcDriver -Platform '64-bit' -ErrorAction SilentlyContinue |
    Where-Object { $SupportedOdbcDrivers -contains $_.Name } | ForEach-Object { $_.Name })
if ($odbcDrivers.Count -eq 0) {
    Stop-WithError ("No Microsoft ODBC driver for SQL Server is installed (64-bit 'ODBC Driver 18 for SQL Server' or " +
        "'ODBC Driver 17 for SQL Server'). Install 'Microsoft ODBC Driver 18 for SQL Server' (x64) from Microsoft, " +
        "then run this script again. Nothing was installed.") 2
}
Write-Host "ODBC driver found: $($odbcDrivers -join ', ')"

# (Windows PowerShell turns a redirected stderr line into an error: a missing Python lands in catch.)
try {
    $pythonVersion = Invoke-Expression "$Python -c `"import struct, sys; print(sys.version_info[:2] == (3, 11) and struct.calcsize('P') == 8)`"" 2>$null
} catch { $pythonVersion = $null }
if ($pythonVersion -ne 'True') {
    Stop-WithError "Python 3.11 (64-bit) is needed ('$Python' did not run it). Install it for all users, then run this script again. Nothing was installed." 2
}
if (-not (Test-Path $Wheel)) { Stop-WithError "The wheel '$Wheel' does not exist. Nothing was installed." 2 }

# ------------------------------------------------------------------ 2. the agent's environment and files
New-Item -ItemType Directory -Force -Path $InstallDir, "$DataDir\var", "$DataDir\logs", $SecretsDir | Out-Null
if (-not (Test-Path $VenvPython)) { Invoke-Expression "$Python -m venv `"$InstallDir\venv`"" }
& $VenvPython -m pip install --upgrade pip
& $VenvPython -m pip install --upgrade "$((Resolve-Path $Wheel).Path)[agent]"      # pyodbc, and pywin32 for the service
if ($LASTEXITCODE -ne 0) { Stop-WithError "pip could not install the agent." 3 }
Copy-Item (Join-Path $PSScriptRoot 'ssmconn_service.py') $ServiceScript -Force
Set-Content -Path (Join-Path $InstallDir 'ssm-agent.cmd') -Encoding ASCII -Value @(
    '@echo off',
    'setlocal',
    "set SSMCONN_AGENT_CONFIG=$ConfigPath",
    "`"%~dp0venv\Scripts\python.exe`" `"%~dp0ssmconn_service.py`" cli %*")
$firstRun = -not (Test-Path $ConfigPath)
if ($firstRun) { Copy-Item (Join-Path $PSScriptRoot 'config.example.toml') $ConfigPath }

# Administrators and SYSTEM have full control of the settings and secrets; the service's account reads them
# and writes only its state and logs. A virtual account (NT SERVICE\name) has no name to look up before its
# service exists: its SID, derived from the service name, is what sc.exe showsid prints.
function Get-ServiceAccountIdentity {
    if ($ServiceAccount -like 'NT SERVICE\*') {
        $sid = (& sc.exe showsid ($ServiceAccount -replace '^NT SERVICE\\', '') | Select-String 'S-1-5-80-[0-9-]+').Matches[0].Value
        return New-Object System.Security.Principal.SecurityIdentifier($sid)
    }
    return New-Object System.Security.Principal.NTAccount($ServiceAccount)
}
$serviceIdentity = Get-ServiceAccountIdentity
function Set-FolderAccess([string] $Path, [string] $ServiceRights) {
    $acl = Get-Acl $Path
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($who in @('BUILTIN\Administrators', 'NT AUTHORITY\SYSTEM')) {
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($who, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
    }
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($serviceIdentity, $ServiceRights, 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
    Set-Acl $Path $acl
}
Set-FolderAccess $DataDir 'ReadAndExecute'
Set-FolderAccess $SecretsDir 'Read'
Set-FolderAccess "$DataDir\var" 'Modify'
Set-FolderAccess "$DataDir\logs" 'Modify'

# ------------------------------------------------------------------ 3. secrets (DPAPI, never in config.toml)
if (-not (Test-Path (Join-Path $SecretsDir "$BusSecret.dpapi"))) {
    Protect-SsmSecret $BusSecret 'Service Bus connection string of the agent-send rule (deployment output)'
}
# The settings without their comment lines: the secrets they name, and no key or password in clear.
$configText = (Get-Content $ConfigPath | Where-Object { $_ -notmatch '^\s*#' }) -join "`n"
if (-not $firstRun) {
    foreach ($name in ([regex]::Matches($configText, '\$\{secret:([A-Za-z0-9_.-]+)\}') | ForEach-Object { $_.Groups[1].Value } | Sort-Object -Unique)) {
        if (-not (Test-Path (Join-Path $SecretsDir "$name.dpapi"))) { Protect-SsmSecret $name "Value of the secret '$name' named in config.toml" }
    }
}
if ($configText -match '(?i)SharedAccessKey=[^<;"]|\b(PWD|Password)\s*=\s*(?!\{?\$\{secret:)[^<;"\s]') {
    Write-Host "WARNING: config.toml holds a key or password in clear; replace it with `${secret:NAME} and run -SetSecret NAME." -ForegroundColor Yellow
}

if ($firstRun -or $configText -match '<[a-z ]+>') {
    Write-Host "Edit $ConfigPath (the SQL connections, one [[dossiers]] block per company database), then run this script again:"
    Write-Host "it checks the SQL connections, then registers and starts the service."
    exit 0
}

# ------------------------------------------------------------------ 4. the SQL connections, with the configured logins
& $VenvPython $ServiceScript check --config $ConfigPath
if ($LASTEXITCODE -ne 0) {
    Stop-WithError "A SQL connection failed (above). Fix config.toml, the logins (sql-login.sql) or the secrets, then run this script again. The service was not registered." 4
}
if ($configText -match '(?i)Trusted_Connection\s*=\s*yes') {
    Write-Host "Windows authentication: the check ran as $env:USERDOMAIN\$env:USERNAME; the service connects as $ServiceAccount, which needs its own SQL login (sql-login.sql)."
}

# ------------------------------------------------------------------ 5. the Windows service
# An earlier version ran the agent as a scheduled task: remove it, one agent only.
if (Get-ScheduledTask -TaskName $ServiceName -ErrorAction SilentlyContinue) {
    Stop-ScheduledTask -TaskName $ServiceName -ErrorAction SilentlyContinue
    Unregister-ScheduledTask -TaskName $ServiceName -Confirm:$false
}
if (Get-Service -Name $ServiceName -ErrorAction SilentlyContinue) { Stop-Service -Name $ServiceName -ErrorAction SilentlyContinue }

# pywin32 registers pythonservice.exe hosting ssmconn_service.SsmConnectorAgentService: automatic, delayed start.
& $VenvPython $ServiceScript --startup delayed install
if ($LASTEXITCODE -ne 0) { Stop-WithError "The service could not be registered." 6 }

# Its account (a password only for an ordinary domain account; virtual accounts and gMSAs have none).
$password = $null
if ($ServiceAccount -notmatch '^NT SERVICE\\' -and $ServiceAccount -notmatch '\$$' -and $ServiceAccount -notmatch '^(LocalSystem|NT AUTHORITY\\)') {
    $password = (Get-Credential -UserName $ServiceAccount -Message 'Password of the service account').GetNetworkCredential().Password
}
$service = Get-CimInstance -ClassName Win32_Service -Filter "Name='$ServiceName'"
$change = Invoke-CimMethod -InputObject $service -MethodName Change -Arguments @{ StartName = $ServiceAccount; StartPassword = $password }
$password = $null
if ($change.ReturnValue -ne 0) { Stop-WithError "The service account could not be set (Win32_Service.Change returned $($change.ReturnValue))." 6 }

# Where its settings are, in the service's own environment.
Set-ItemProperty -Path "HKLM:\SYSTEM\CurrentControlSet\Services\$ServiceName" -Name Environment -Type MultiString `
    -Value @("SSMCONN_AGENT_CONFIG=$ConfigPath")

# Restart on failure: after 1 minute, twice, then every 5 minutes; the count resets after a day without failure.
# failureflag 1: a stop with an error counts as a failure too, not only a crash.
& sc.exe failure $ServiceName reset= 86400 actions= restart/60000/restart/60000/restart/300000 | Out-Null
if ($LASTEXITCODE -ne 0) { Stop-WithError "The service's recovery actions could not be set." 6 }
& sc.exe failureflag $ServiceName 1 | Out-Null

Start-Service -Name $ServiceName
(Get-Service -Name $ServiceName).WaitForStatus('Running', (New-TimeSpan -Seconds 60))
Write-Host "Service $ServiceName installed and running as $ServiceAccount (automatic start, restarted on failure)."
Write-Host "Commands: `"$InstallDir\ssm-agent.cmd`" agent databases | agent select ID | agent state"
