def execute_command(image):
    dogs = image.find("dog")
    return len(dogs)
