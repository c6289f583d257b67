-- Least-privilege SQL Server login for the connector's agent, one block per connected dossier.
-- Run as a sysadmin on the Sage server. Replace <STRONG PASSWORD> and the database names.
-- The agent reads the tables below; it writes only where SSM commands create data in Sage
-- (quotes, prospects, contacts), through Sage's own triggers (never disabled).

USE [master];
IF NOT EXISTS (SELECT 1 FROM sys.server_principals WHERE name = N'ssm_connector')
    CREATE LOGIN [ssm_connector] WITH PASSWORD = N'<STRONG PASSWORD>', CHECK_POLICY = ON, DEFAULT_DATABASE = [master];
-- Listing the company databases (agent databases) needs only the default VIEW ANY DATABASE of `public`.
GO

-- Repeat from here for every dossier (here: BIJOU).
USE [BIJOU];
IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'ssm_connector')
    CREATE USER [ssm_connector] FOR LOGIN [ssm_connector];

-- Read: what the agent syncs to SSM.
GRANT SELECT ON dbo.P_DOSSIER        TO [ssm_connector];
GRANT SELECT ON dbo.P_CATTARIF       TO [ssm_connector];
GRANT SELECT ON dbo.F_COLLABORATEUR  TO [ssm_connector];
GRANT SELECT ON dbo.F_COMPTET        TO [ssm_connector];
GRANT SELECT ON dbo.F_CONTACTT       TO [ssm_connector];
GRANT SELECT ON dbo.F_FAMILLE        TO [ssm_connector];
GRANT SELECT ON dbo.F_ARTICLE        TO [ssm_connector];
GRANT SELECT ON dbo.F_ARTSTOCK       TO [ssm_connector];
GRANT SELECT ON dbo.F_DEPOT          TO [ssm_connector];
GRANT SELECT ON dbo.F_ARTCLIENT      TO [ssm_connector];
GRANT SELECT ON dbo.F_TARIFQTE       TO [ssm_connector];
GRANT SELECT ON dbo.F_DOCENTETE      TO [ssm_connector];
GRANT SELECT ON dbo.F_DOCLIGNE       TO [ssm_connector];
GRANT SELECT ON dbo.F_DOCCURRENTPIECE TO [ssm_connector];

-- Write: only where SSM commands create data in Sage (quotes, prospects, contacts).
GRANT INSERT, UPDATE ON dbo.F_COMPTET         TO [ssm_connector];
GRANT INSERT         ON dbo.F_COMPTETG        TO [ssm_connector];
GRANT INSERT         ON dbo.F_LIVRAISON       TO [ssm_connector];
GRANT INSERT, UPDATE ON dbo.F_CONTACTT        TO [ssm_connector];
GRANT INSERT         ON dbo.F_DOCENTETE       TO [ssm_connector];
GRANT INSERT         ON dbo.F_DOCLIGNE        TO [ssm_connector];
GRANT INSERT         ON dbo.F_DOCENTETEINFOS  TO [ssm_connector];
GRANT INSERT         ON dbo.F_DOCREGL         TO [ssm_connector];
GRANT UPDATE         ON dbo.F_DOCCURRENTPIECE TO [ssm_connector];
-- Nothing else: no DELETE anywhere, no ALTER, no access to the cb* anti-fraud chain beyond what triggers do.
GO
