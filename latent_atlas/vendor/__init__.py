"""Third-party files shipped as package data, each folder with its licence and a README that
says where it came from."""
