FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends curl procps \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY . .
# collectstatic with production settings, so that the hashed manifest is written.
RUN pip install --no-cache-dir . \
    && DEBUG=false SECRET_KEY=collectstatic-only-not-a-real-secret-0123456789abcdefghijkl \
       python manage.py collectstatic --noinput
RUN useradd --create-home debrief && chown -R debrief /app
USER debrief
EXPOSE 8000
CMD ["gunicorn", "crm_site.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
