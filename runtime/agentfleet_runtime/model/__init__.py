"""The model client: the OpenAI-compatible wire, prompts, text tool calls and model files."""
