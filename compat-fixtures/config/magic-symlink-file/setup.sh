ln -s real/app.ini link.ini
ln -s real linkdir
