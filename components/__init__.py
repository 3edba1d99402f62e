"""Pulumi components that serve LLMs with vLLM on GCP, AWS and Kubernetes."""
