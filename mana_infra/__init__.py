"""mana-infra: the Mana platform's second way onto the internet, as a Pulumi program."""
