"""Critics: models that judge a step (is the evidence sufficient? which action is better?)."""
