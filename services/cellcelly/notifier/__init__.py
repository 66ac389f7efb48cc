"""The notifier: threshold events become messages to the subscriber, each told once."""
