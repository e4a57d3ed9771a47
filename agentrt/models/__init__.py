"""Chat models: one interface (base.AgentChatModel), several backends, loaded by spec string."""
