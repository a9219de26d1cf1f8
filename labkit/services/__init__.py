"""asyncio transports around the pure protocol cores, and the supervisor that runs them."""
