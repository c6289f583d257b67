-- Least-privilege SQL Server logins for the connector's agent, one block per connected dossier.
-- Run as a sysadmin on the Sage server. Replace the passwords and the database names.
-- The agent reads with `ssm_connector` (SELECT only). Only if the two-way writer is used (SSM -> Sage:
-- prospects and contacts created or changed by SSM users, quotes priced and written as devis), it writes as `ssm_connector_writer`, allowed to
-- write only the tables it writes (`[[dossiers]] odbc_writer` in the agent's config.toml), always through
-- Sage's own triggers (never disabled), never DELETE, never ALTER. Without the writer, skip its part.
--
-- The reading login authenticates either
--   A. with a password (SQL login `ssm_connector`, below), stored on the agent's server encrypted for that
--      computer (install-agent.ps1 -SetSecret sql-reader; config.toml: PWD={${secret:sql-reader}}), or
--   B. with Windows authentication (config.toml: Trusted_Connection=yes), no password anywhere: the
--      login is the agent service's Windows account. Use the B lines instead of the A lines: the
--      database user keeps the name `ssm_connector`, so every GRANT below stays the same.
--      NT SERVICE\SsmConnectorAgent (the service's virtual account) when SQL Server runs on the agent's
--      computer; DOMAIN\AGENTSERVER$ (that computer's account) or a gMSA DOMAIN\gmsa-ssmconn$ otherwise.

USE [master];
-- A. SQL login with a password:
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'ssm_connector')
    CREATE LOGIN [ssm_connector] WITH PASSWORD = N'<STRONG PASSWORD>', CHECK_POLICY = ON, DEFAULT_DATABASE = [master];
-- B. Windows authentication (instead of A):
-- IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'NT SERVICE\SsmConnectorAgent')
--     CREATE LOGIN [NT SERVICE\SsmConnectorAgent] FROM WINDOWS WITH DEFAULT_DATABASE = [master];
-- Listing the company databases (agent databases) needs only the default VIEW ANY DATABASE of `public`.
GO

-- Repeat from here for every dossier (here: BIJOU).
USE [BIJOU];
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'ssm_connector')
    CREATE USER [ssm_connector] FOR LOGIN [ssm_connector];                        -- A
--  CREATE USER [ssm_connector] FOR LOGIN [NT SERVICE\SsmConnectorAgent];       -- B (instead of A)

-- Read: what the agent syncs to SSM.
GRANT SELECT ON dbo.P_DOSSIER        TO [ssm_connector];
GRANT SELECT ON dbo.P_CATTARIF       TO [ssm_connector];
GRANT SELECT ON dbo.F_COLLABORATEUR  TO [ssm_connector];
GRANT SELECT ON dbo.F_COMPTET        TO [ssm_connector];
GRANT SELECT ON dbo.F_CONTACTT       TO [ssm_connector];
GRANT SELECT ON dbo.F_LIVRAISON      TO [ssm_connector];
GRANT SELECT ON dbo.F_FAMILLE        TO [ssm_connector];
GRANT SELECT ON dbo.F_ARTICLE        TO [ssm_connector];
GRANT SELECT ON dbo.F_ARTSTOCK       TO [ssm_connector];
GRANT SELECT ON dbo.F_DEPOT          TO [ssm_connector];
GRANT SELECT ON dbo.F_ARTCLIENT      TO [ssm_connector];
GRANT SELECT ON dbo.F_TARIFQTE       TO [ssm_connector];
GRANT SELECT ON dbo.F_DOCENTETE      TO [ssm_connector];
GRANT SELECT ON dbo.F_DOCLIGNE       TO [ssm_connector];
GRANT SELECT ON dbo.F_DOCCURRENTPIECE TO [ssm_connector];

-- Nothing else: this login never writes.
GO

-- Only with the two-way writer: the Sage writer's login (SSM -> Sage), one block per dossier as well.
-- A SQL login of its own (its password stored as the secret sql-writer), so that the reading login never writes.
USE [master];
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'ssm_connector_writer')
    CREATE LOGIN [ssm_connector_writer] WITH PASSWORD = N'<ANOTHER STRONG PASSWORD>', CHECK_POLICY = ON, DEFAULT_DATABASE = [master];
GO

USE [BIJOU];
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'ssm_connector_writer')
    CREATE USER [ssm_connector_writer] FOR LOGIN [ssm_connector_writer];

-- The connector's own table: the commands already applied, written in the same transaction as
-- the rows they create, so a command applied twice has one effect.
IF OBJECT_ID(N'dbo.SSM_CONNECTOR_COMMANDS', N'U') IS NULL
    CREATE TABLE dbo.SSM_CONNECTOR_COMMANDS (CMD_Id varchar(64) NOT NULL PRIMARY KEY, CMD_Op varchar(32) NOT NULL,
        CMD_Entity varchar(32) NOT NULL, CMD_Key varchar(64), CMD_Result nvarchar(4000), CMD_AppliedAt datetime);
GRANT SELECT, INSERT ON dbo.SSM_CONNECTOR_COMMANDS TO [ssm_connector_writer];

-- Prospects (new tiers with their collective account and main delivery address) and contacts.
GRANT SELECT, INSERT, UPDATE ON dbo.F_COMPTET    TO [ssm_connector_writer];
GRANT SELECT, INSERT         ON dbo.F_COMPTETG   TO [ssm_connector_writer];
GRANT SELECT, INSERT         ON dbo.F_LIVRAISON  TO [ssm_connector_writer];
GRANT SELECT, INSERT, UPDATE ON dbo.F_CONTACTT   TO [ssm_connector_writer];
GRANT SELECT ON dbo.F_COLLABORATEUR              TO [ssm_connector_writer];

-- Quotes made in SSM: priced by Sage's rules (read only), then written as a devis on the rep's request:
-- the header, its lines and the piece number taken from F_DOCCURRENTPIECE in the same transaction.
GRANT SELECT ON dbo.F_ARTICLE                    TO [ssm_connector_writer];
GRANT SELECT ON dbo.F_ARTCLIENT                  TO [ssm_connector_writer];
GRANT SELECT ON dbo.F_TARIFQTE                   TO [ssm_connector_writer];
GRANT SELECT ON dbo.F_ARTSTOCK                   TO [ssm_connector_writer];
GRANT SELECT ON dbo.F_DEPOT                      TO [ssm_connector_writer];
GRANT SELECT, INSERT         ON dbo.F_DOCENTETE  TO [ssm_connector_writer];
GRANT SELECT, INSERT         ON dbo.F_DOCLIGNE   TO [ssm_connector_writer];
GRANT SELECT, UPDATE         ON dbo.F_DOCCURRENTPIECE TO [ssm_connector_writer];
-- Nothing else: no DELETE anywhere, no ALTER, no Sage technical column (cbMarq, cbModification, cbHash...)
-- is ever written; Sage's triggers maintain them.
GO
