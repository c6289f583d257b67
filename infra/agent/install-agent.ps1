<#
.SYNOPSIS
  Installs the Sage ⇄ SSM connector agent on the Sage server as a scheduled task that starts at
  boot, runs under a dedicated account and restarts on failure.

.DESCRIPTION
  Prerequisites: Python 3.11 (x64) for all users, Microsoft ODBC Driver 18 for SQL Server,
  outbound HTTPS (443) and AMQP (5671/5672) to the Service Bus namespace.
  Layout:
    C:\Program Files\SsmConnector\venv      the agent's Python environment
    C:\ProgramData\SsmConnector\config.toml settings (ACL: Administrators + the service account)
    C:\ProgramData\SsmConnector\var\        agent.db (watermarks, shadow, outbox) — back it up
    C:\ProgramData\SsmConnector\logs\       agent.log, rotated (10 x 10 MB)

.EXAMPLE
  .\install-agent.ps1 -Wheel .\ssm_connector-0.1.0-py3-none-any.whl -ServiceAccount 'DOMAIN\svc-ssmconn'
#>
param(
    [Parameter(Mandatory = $true)] [string] $Wheel,
    [Parameter(Mandatory = $true)] [string] $ServiceAccount,
    [string] $InstallDir = "$env:ProgramFiles\SsmConnector",
    [string] $DataDir = "$env:ProgramData\SsmConnector",
    [string] $Python = "py -3.11"
)
$ErrorActionPreference = 'Stop'

New-Item -ItemType Directory -Force -Path $InstallDir, "$DataDir\var", "$DataDir\logs" | Out-Null
Invoke-Expression "$Python -m venv `"$InstallDir\venv`""
& "$InstallDir\venv\Scripts\python.exe" -m pip install --upgrade pip
& "$InstallDir\venv\Scripts\python.exe" -m pip install "$Wheel[agent]"

if (-not (Test-Path "$DataDir\config.toml")) {
    Copy-Item (Join-Path $PSScriptRoot 'config.example.toml') "$DataDir\config.toml"
    Write-Host "Edit $DataDir\config.toml, then run: ssm-connector agent databases --config `"$DataDir\config.toml`""
}

# Only Administrators and the service account may read the settings (they hold the SAS key).
$acl = Get-Acl "$DataDir"
$acl.SetAccessRuleProtection($true, $false)
foreach ($who in @('BUILTIN\Administrators', 'NT AUTHORITY\SYSTEM', $ServiceAccount)) {
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($who, 'Modify', 'ContainerInherit,ObjectInherit', 'None', 'Allow')
    $acl.AddAccessRule($rule)
}
Set-Acl "$DataDir" $acl

$exe = "$InstallDir\venv\Scripts\ssm-connector.exe"
$action = New-ScheduledTaskAction -Execute $exe -Argument "agent run --config `"$DataDir\config.toml`"" -WorkingDirectory $DataDir
$trigger = New-ScheduledTaskTrigger -AtStartup
$settings = New-ScheduledTaskSettingsSet -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
    -ExecutionTimeLimit ([TimeSpan]::Zero) -MultipleInstances IgnoreNew -StartWhenAvailable
$credential = Get-Credential -UserName $ServiceAccount -Message 'Password of the service account'
Register-ScheduledTask -TaskName 'SsmConnectorAgent' -Action $action -Trigger $trigger -Settings $settings `
    -User $credential.UserName -Password $credential.GetNetworkCredential().Password -RunLevel Limited -Force
Start-ScheduledTask -TaskName 'SsmConnectorAgent'
Write-Host "Agent installed and started. State: $exe agent state --config `"$DataDir\config.toml`""
