"""The sync core shared by the on-prem agent and the cloud functions.

Nothing in this package imports `agent` or `functions`; Azure SDK imports live only in
`shared.adapters`.
"""
