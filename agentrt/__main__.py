from agentrt.cli import app

app(prog_name="agentrt")
