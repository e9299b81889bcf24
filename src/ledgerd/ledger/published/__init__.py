"""What the ledger context shows the world: its resources and events as protobuf."""
