"""The Sage 100 source: its schema (`schema`), the declared mapping to canonical records
(`spec`) and the streaming reader built on both (`reader`)."""
