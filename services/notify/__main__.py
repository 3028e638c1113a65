"""`python -m services.notify`: serve the notify service."""

from shared.serve import serve

if __name__ == "__main__":
    serve("notify")
