// Cloud side of the Sage ⇄ Sage Sales Management connector.
// One deployment per implementation (one SSM tenant = one group of dossiers):
// Function App (Linux, Python 3.11, Flex Consumption), Service Bus Standard with the two session
// queues, Storage (state tables, host storage, deployment container; shared keys off), Key Vault
// (RBAC) for the SSM keys, Log Analytics + Application Insights, and a user-assigned managed
// identity for the Function App with least-privilege role assignments. The on-prem agent gets
// queue-scoped SAS rules: Send on sage-changes, Listen on sage-commands, nothing else.

targetScope = 'resourceGroup'

@description('Short environment name, part of every resource name (e.g. prod, test): 2 to 10 lowercase letters or digits, as storage account names require.')
@minLength(2)
@maxLength(10)
param environmentName string

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Base URL of the SSM v4 API.')
param ssmBaseUrl string = 'https://api.forcemanager.com/api/v4'

@description('Name of the group of dossiers this implementation serves.')
param groupName string = 'default'

@description('E-mail of the SSM administrator who owns accounts without a sales rep.')
param ssmAdminUserEmail string = ''

@description('The tenant\'s documented API plan, in requests per second: 4 or 13 (0.83 on Starter, 50 per minute).')
@allowed([
  '4'
  '13'
  '0.83'
])
param ssmRateLimitPerSecond string = '4'

@description('Maximum deliveries of a message before Service Bus dead-letters it.')
@minValue(1)
param maxDeliveryCount int = 10

@description('Maximum instances of the Function App.')
param maximumInstanceCount int = 40

@description('Service Bus over AMQP on WebSockets (port 443) instead of AMQP on TCP port 5671, for the Function App; the agent has its own `[bus] websockets`.')
param serviceBusOverWebSockets bool = false

@description('Name of the Key Vault; empty: derived from the environment and the resource group. Give a new name to redeploy into a re-created resource group while the old vault is still soft-deleted (purge protection keeps its name 90 days), or use keyVaultCreateMode=recover.')
@maxLength(24)
param keyVaultName string = ''

@description('recover: bring back the soft-deleted vault of that name (and the SSM keys it holds), for one deployment after the resource group was deleted; default otherwise.')
@allowed([
  'default'
  'recover'
])
param keyVaultCreateMode string = 'default'

// Bicep has no pattern decorator: the characters of environmentName are checked here, before any
// resource is named, and a bad one stops the deployment with this message.
var storageNameCharacters = 'abcdefghijklmnopqrstuvwxyz0123456789'
var environmentNameBadCharacters = filter(range(0, length(environmentName)), i => !contains(storageNameCharacters, substring(environmentName, i, 1)))
var env = empty(environmentNameBadCharacters) ? environmentName : fail('environmentName \'${environmentName}\' may hold only lowercase letters and digits: it is part of the storage account name.')

var suffix = uniqueString(resourceGroup().id, env)
var names = {
  identity: 'id-ssmconn-${env}'
  serviceBus: 'sb-ssmconn-${env}-${suffix}'
  storage: take('stssm${env}${suffix}', 24)
  keyVault: empty(keyVaultName) ? take('kv-ssm-${env}-${suffix}', 24) : keyVaultName
  logs: 'log-ssmconn-${env}'
  insights: 'appi-ssmconn-${env}'
  plan: 'plan-ssmconn-${env}'
  functionApp: 'func-ssmconn-${env}-${suffix}'
}
var changesQueueName = 'sage-changes'
var commandsQueueName = 'sage-commands'
var deploymentContainerName = 'app-package'

// Built-in role definition ids.
var roles = {
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
}

// ---------------------------------------------------------------- monitoring
resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: names.logs
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: names.insights
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------- Service Bus
resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: names.serviceBus
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    minimumTlsVersion: '1.2'
    disableLocalAuth: false // the on-prem agent authenticates with its queue-scoped SAS rules
  }
}

var queueProperties = {
  requiresSession: true
  requiresDuplicateDetection: true
  duplicateDetectionHistoryTimeWindow: 'PT10M'
  lockDuration: 'PT5M'
  maxDeliveryCount: maxDeliveryCount
  deadLetteringOnMessageExpiration: true
  defaultMessageTimeToLive: 'P14D'
  maxSizeInMegabytes: 1024
  enablePartitioning: false
}

resource changesQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: serviceBus
  name: changesQueueName
  properties: queueProperties
}

resource commandsQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: serviceBus
  name: commandsQueueName
  properties: queueProperties
}

resource agentSendChanges 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2022-10-01-preview' = {
  parent: changesQueue
  name: 'agent-send'
  properties: { rights: [ 'Send' ] }
}

resource agentListenCommands 'Microsoft.ServiceBus/namespaces/queues/authorizationRules@2022-10-01-preview' = {
  parent: commandsQueue
  name: 'agent-listen'
  properties: { rights: [ 'Listen' ] }
}

// ---------------------------------------------------------------- Storage
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: names.storage
  location: location
  sku: { name: 'Standard_ZRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// ---------------------------------------------------------------- Key Vault
// Soft delete and purge protection keep a deleted vault's name for 90 days: a deployment into a
// re-created resource group either recovers it (keyVaultCreateMode=recover) or names another
// (keyVaultName). docs/deploy.md, "Deploying again after deleting the resource group".
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: names.keyVault
  location: location
  properties: {
    createMode: keyVaultCreateMode
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

// The SSM key pair is written by the operator after deployment (docs/deploy.md); the names are fixed here.
var ssmPublicKeySecret = 'ssm-public-key'
var ssmPrivateKeySecret = 'ssm-private-key'

// ---------------------------------------------------------------- Function App
resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: names.plan
  location: location
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: names.functionApp
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        // host storage through the managed identity
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        // Service Bus trigger connection through the managed identity
        { name: 'ServiceBusConnection__fullyQualifiedNamespace', value: '${serviceBus.name}.servicebus.windows.net' }
        { name: 'ServiceBusConnection__credential', value: 'managedidentity' }
        { name: 'ServiceBusConnection__clientId', value: identity.properties.clientId }
        // AMQP over WebSockets (port 443) for the trigger (host.json override) and the connector's own client
        { name: 'AzureFunctionsJobHost__extensions__serviceBus__transportType', value: serviceBusOverWebSockets ? 'amqpWebSockets' : 'amqpTcp' }
        { name: 'SSMCONN__BUS__WEBSOCKETS', value: serviceBusOverWebSockets ? 'true' : 'false' }
        // telemetry (Entra ID authentication: local auth is off on the component). host.json has
        // telemetryMode OpenTelemetry; the worker's logs are exported once, by the connector's own
        // configure_azure_monitor (shared/telemetry.py), the host told not to forward them again.
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        { name: 'PYTHON_ENABLE_OPENTELEMETRY', value: 'true' }
        // the connector's own settings (shared/config.py, SSMCONN__SECTION__FIELD)
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'SSMCONN__GROUP', value: groupName }
        { name: 'SSMCONN__STATE__KIND', value: 'azure-tables' }
        { name: 'SSMCONN__STATE__ACCOUNT_URL', value: storage.properties.primaryEndpoints.table }
        { name: 'SSMCONN__BUS__KIND', value: 'service-bus' }
        { name: 'SSMCONN__BUS__FULLY_QUALIFIED_NAMESPACE', value: '${serviceBus.name}.servicebus.windows.net' }
        { name: 'SSMCONN__BUS__CHANGES_QUEUE', value: changesQueueName }
        { name: 'SSMCONN__BUS__COMMANDS_QUEUE', value: commandsQueueName }
        { name: 'SSMCONN__SSM__BASE_URL', value: ssmBaseUrl }
        { name: 'SSMCONN__SSM__ADMIN_USER_EMAIL', value: ssmAdminUserEmail }
        { name: 'SSMCONN__SSM__RATE_LIMIT_PER_S', value: ssmRateLimitPerSecond }
        { name: 'SSMCONN__SSM__PUBLIC_KEY', value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=${ssmPublicKeySecret})' }
        { name: 'SSMCONN__SSM__PRIVATE_KEY', value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=${ssmPrivateKeySecret})' }
      ]
    }
  }
}

// ---------------------------------------------------------------- role assignments (least privilege)
resource receiveChanges 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(changesQueue.id, identity.id, roles.serviceBusDataReceiver)
  scope: changesQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataReceiver)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource sendCommands 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(commandsQueue.id, identity.id, roles.serviceBusDataSender)
  scope: commandsQueue
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataSender)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Host storage (leases, keys) and the deployment package container.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------- outputs the agent and the operator need
output functionAppName string = functionApp.name
output functionAppHostName string = functionApp.properties.defaultHostName
output serviceBusNamespace string = '${serviceBus.name}.servicebus.windows.net'
output changesQueue string = changesQueueName
output commandsQueue string = commandsQueueName
output agentSendRuleName string = agentSendChanges.name
output agentListenRuleName string = agentListenCommands.name
output keyVaultName string = keyVault.name
output storageAccountName string = storage.name
output managedIdentityClientId string = identity.properties.clientId
