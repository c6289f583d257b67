"""The Sage 50 FR source: its exchange files' layouts as data (`layouts.toml`, `layout`), the
exchange folder and the agent's accepted copies (`exchange`), the reader of canonical records
(`reader`), the import files written from SSM's commands (`writer`), and its registry entry
(`source`)."""
