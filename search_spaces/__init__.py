"""Neural-architecture search spaces, declared as data (one module per space)."""
