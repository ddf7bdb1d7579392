// whatsapp-api dashboard behaviour
