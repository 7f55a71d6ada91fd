# Relais gateway image: the API (`relais serve`) on port 8080.
# Production: set RELAIS_DATABASE_URL=postgresql+psycopg://… ; the default is SQLite in /data.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    RELAIS_HOST=0.0.0.0 \
    RELAIS_PORT=8080 \
    RELAIS_DATABASE_URL=sqlite:////data/relais.db

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY gateway ./gateway
COPY mappings ./mappings
COPY connectors ./connectors
RUN pip install --upgrade "pip==26.3" && pip install -c constraints.txt . \
    && useradd --system --home /data --create-home relais

USER relais
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health'); sys.exit(0)"
CMD ["relais", "serve"]
