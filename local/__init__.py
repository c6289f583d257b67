"""The embedded local runtime: one command runs the agent, a local bus, the cloud handlers, the SSM simulator and the status page on 127.0.0.1."""
