"""`python -m services.dispatch`: serve the dispatch service."""

from shared.serve import serve

if __name__ == "__main__":
    serve("dispatch")
