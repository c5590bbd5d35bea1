"""The AgentWatch server: FastAPI app, ingest writer, live stream."""
