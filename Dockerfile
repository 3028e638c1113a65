# One image for the three services; `docker compose up` runs each with its own command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.9
# The fonts of the printable posters (notify, issue 17), from Debian: CJK, and the Arabic
# (Uyghur, Kazakh), Tibetan, Mongolian, Yi and Latin/Cyrillic fonts names are written in.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk fonts-noto-core \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY services ./services
RUN uv sync --frozen --no-dev
ENV HOMEWARD_HOST=0.0.0.0
