# placeholder until the protocol library lands
