"""`python -m services.alert`: serve the alert service."""

from shared.serve import serve

if __name__ == "__main__":
    serve("alert")
