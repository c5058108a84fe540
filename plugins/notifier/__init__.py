"""Built-in notifier plugin: lifecycle events to a webhook and by e-mail (`plugin`)."""
