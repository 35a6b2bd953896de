"""The broker port (job transport) and its implementations: RabbitMQ and an embedded queue."""
