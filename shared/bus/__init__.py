"""The message bus between agent and cloud: Service Bus semantics, two implementations."""
