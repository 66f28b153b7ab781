"""The reliability suite (marker ``reliability``): real ``ges-bot run`` replicas on PostgreSQL,
killed, starved and fed garbage, with every alert accounted for."""
