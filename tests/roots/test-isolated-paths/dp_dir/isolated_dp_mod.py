VALUE = 'doctest_path'
