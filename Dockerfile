FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MASSMAIL_VAR_DIR=/app/var
WORKDIR /app
COPY pyproject.toml README.md ./
RUN pip install --no-cache-dir .
COPY . .
# A throwaway key: production refuses short ones, and nothing is signed at build time.
RUN MASSMAIL_ENV=production SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --noinput
RUN useradd --create-home massmail && mkdir -p /app/var && chown -R massmail /app/var
USER massmail
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "-c", "config/gunicorn.py"]
