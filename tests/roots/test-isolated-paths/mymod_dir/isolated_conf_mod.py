VALUE = 'conf.py'
