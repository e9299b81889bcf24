"""The webhooks' entry points: the gRPC servicer (REST follows), its tables, its error table."""
