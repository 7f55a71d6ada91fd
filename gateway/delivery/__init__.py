"""The delivery spine: exchange → consent decision → mapping → validation → outbox → worker → receipt."""
