"""The virtual phone: what a Cisco MPP phone asks for and fetches, and in what order."""
